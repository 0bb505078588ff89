// An npm ws (v8) client driven line by line, for the WebSocket cases of the
// integration tests (ws_cases.py).
//
// usage: node ws_driver.mjs URL [--deflate] [--threshold BYTES] [--timeout-ms MS]
//   --deflate         offer permessage-deflate (ws's own negotiation); off by default
//   --threshold N     compress outgoing messages of at least N bytes (default 1024)
//
// stdin, one JSON object per line:
//   {"op":"send","text":"..."}        a text message
//   {"op":"binary","b64":"..."}       a binary message
//   {"op":"ping","text":"..."}        a ping
//   {"op":"close","code":1000,"reason":"bye"}
// stdout, one JSON object per line, each with "t" (ms since start):
//   {"type":"open","extensions":"...","protocol":"..."}
//   {"type":"message","binary":false,"text":"...","data":<parsed JSON or null>}
//   {"type":"ping","text":"..."} {"type":"pong","text":"..."}
//   {"type":"close","code":N,"reason":"..."}
//   {"type":"http","status":N}       the server refused the upgrade
//   {"type":"error","message":"..."}
// Exits after the close, at stdin EOF, or after --timeout-ms.
import WebSocket from 'ws';
import readline from 'node:readline';

const args = process.argv.slice(2);
const url = args[0];
let deflate = false;
let threshold = 1024;
let timeoutMs = 30000;
for (let i = 1; i < args.length; i++) {
    if (args[i] === '--deflate') deflate = true;
    else if (args[i] === '--threshold') threshold = Number(args[++i]);
    else if (args[i] === '--timeout-ms') timeoutMs = Number(args[++i]);
    else {
        process.stderr.write(`ws_driver: unknown argument ${args[i]}\n`);
        process.exit(2);
    }
}

const t0 = Date.now();
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: Date.now() - t0 }) + '\n');
let finished = false;
function finish() {
    if (finished) return;
    finished = true;
    try { ws.terminate(); } catch { /* gone */ }
    process.stdout.write('', () => process.exit(0));
}

const ws = new WebSocket(url, { perMessageDeflate: deflate ? { threshold } : false });
ws.on('open', () => out({ type: 'open', extensions: ws.extensions, protocol: ws.protocol }));
ws.on('message', (data, isBinary) => {
    const text = isBinary ? Buffer.from(data).toString('base64') : data.toString();
    let parsed = null;
    if (!isBinary) {
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
    }
    out({ type: 'message', binary: isBinary, text, data: parsed });
});
ws.on('ping', (d) => out({ type: 'ping', text: d.toString() }));
ws.on('pong', (d) => out({ type: 'pong', text: d.toString() }));
ws.on('unexpected-response', (req, res) => { out({ type: 'http', status: res.statusCode }); finish(); });
ws.on('error', (e) => out({ type: 'error', message: String(e.message) }));
ws.on('close', (code, reason) => { out({ type: 'close', code, reason: reason.toString() }); finish(); });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
    let cmd;
    try { cmd = JSON.parse(line); } catch { out({ type: 'error', message: `bad command ${line}` }); return; }
    try {
        if (cmd.op === 'send') ws.send(cmd.text);
        else if (cmd.op === 'binary') ws.send(Buffer.from(cmd.b64, 'base64'), { binary: true });
        else if (cmd.op === 'ping') ws.ping(cmd.text ?? '');
        else if (cmd.op === 'close') ws.close(cmd.code, cmd.reason ?? '');
        else out({ type: 'error', message: `unknown op ${cmd.op}` });
    } catch (e) {
        out({ type: 'error', message: `${cmd.op}: ${e.message}` });
    }
});
rl.on('close', finish);
setTimeout(finish, timeoutMs);
