// A real EventSource client (npm eventsource v4) for the integration tests.
// Connects to URL, prints one JSON object per line on stdout:
//   {"type":"open"}
//   {"type":"event","event":"<type>","id":"<lastEventId>","data":"<data>"}
//   {"type":"error","code":<http status or null>,"message":"...","state":<readyState>}
//   {"type":"done","reason":"count"|"timeout","events":<n>}
// each with "t": milliseconds since start.
// and exits after --count events or --timeout-ms. Reconnection is the
// library's own (it resends Last-Event-ID after the server's retry: delay).
//
// usage: node es_client.mjs URL [--count N] [--timeout-ms MS]
import { EventSource } from 'eventsource';

const args = process.argv.slice(2);
const url = args[0];
let count = Infinity;
let timeoutMs = 10000;
for (let i = 1; i < args.length; i++) {
    if (args[i] === '--count') count = Number(args[++i]);
    else if (args[i] === '--timeout-ms') timeoutMs = Number(args[++i]);
    else {
        process.stderr.write(`es_client: unknown argument ${args[i]}\n`);
        process.exit(2);
    }
}

const t0 = Date.now();
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: Date.now() - t0 }) + '\n');
let n = 0;
let finished = false;
const es = new EventSource(url);

function finish(reason) {
    if (finished) return;
    finished = true;
    es.close();
    out({ type: 'done', reason, events: n });
    // Let stdout drain before exiting.
    setImmediate(() => process.exit(0));
}

// EventSource only calls listeners for types it was told about; intercept
// dispatchEvent to see every event type, litepush.reset included.
const dispatch = es.dispatchEvent.bind(es);
es.dispatchEvent = (ev) => {
    if (ev.type === 'open') {
        out({ type: 'open' });
    } else if (ev.type === 'error') {
        out({ type: 'error', code: ev.code ?? null, message: String(ev.message ?? ''),
              state: es.readyState });
    } else {
        out({ type: 'event', event: ev.type, id: ev.lastEventId, data: ev.data });
        n++;
        if (n >= count) finish('count');
    }
    return dispatch(ev);
};

setTimeout(() => finish('timeout'), timeoutMs);
