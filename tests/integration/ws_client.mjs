// A WebSocket client (npm ws) for the integration tests: checks that the
// /ws lines of the Apache and lighttpd configs reach litepush-ws.
// Prints one JSON object per line on stdout:
//   {"type":"open"}  {"type":"message","data":<parsed JSON or text>}
//   {"type":"close","code":N}  {"type":"error","message":"..."}
//   {"type":"done","reason":"count"|"timeout"|"close","messages":<n>}
// and exits after --count messages, a close, or --timeout-ms.
//
// usage: node ws_client.mjs URL [--count N] [--timeout-ms MS]
import WebSocket from 'ws';

const args = process.argv.slice(2);
const url = args[0];
let count = Infinity;
let timeoutMs = 10000;
for (let i = 1; i < args.length; i++) {
    if (args[i] === '--count') count = Number(args[++i]);
    else if (args[i] === '--timeout-ms') timeoutMs = Number(args[++i]);
    else {
        process.stderr.write(`ws_client: unknown argument ${args[i]}\n`);
        process.exit(2);
    }
}

const t0 = Date.now();
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: Date.now() - t0 }) + '\n');
let n = 0;
let finished = false;
const ws = new WebSocket(url);

function finish(reason) {
    if (finished) return;
    finished = true;
    out({ type: 'done', reason, messages: n });
    try { ws.terminate(); } catch { /* already gone */ }
    setImmediate(() => process.exit(0));
}

ws.on('open', () => out({ type: 'open' }));
ws.on('message', (data, isBinary) => {
    const text = data.toString();
    let parsed = text;
    try { parsed = JSON.parse(text); } catch { /* keep the text */ }
    out({ type: 'message', binary: isBinary, data: parsed });
    n++;
    if (n >= count) finish('count');
});
ws.on('unexpected-response', (req, res) => {
    out({ type: 'error', message: `HTTP ${res.statusCode}` });
    finish('close');
});
ws.on('error', (e) => out({ type: 'error', message: String(e.message) }));
ws.on('close', (code) => { out({ type: 'close', code }); finish('close'); });
setTimeout(() => finish('timeout'), timeoutMs);
