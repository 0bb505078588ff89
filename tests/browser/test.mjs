// Browser test of demo/index.html: headless Debian chromium driven by
// playwright-core, against lighttpd + the SSE responder + the WebSocket helper
// on loopback ports over a fresh SQLite log (the same setup as demo/run.sh).
// Run by run.sh; prints one line per case and ends with
//   browser: N passed, N failed
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOTAL_BUDGET_MS = 110_000;         // whole run, run.sh adds a hard timeout on top
const CHANNEL = "demo";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "litepush-browser."));
const db = path.join(dir, "push.db");
const procs = new Map();                 // name -> ChildProcess
let browser = null;
let passed = 0, failed = 0;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(s + "\n");

// ---------------------------------------------------------------- cleanup
function killAll() {
    for (const [, p] of procs) {
        if (p.exitCode === null && p.signalCode === null) { try { p.kill("SIGKILL"); } catch {} }
    }
    procs.clear();
}
let cleaning = false;
async function cleanup() {
    if (cleaning) return;
    cleaning = true;
    if (browser) { try { await Promise.race([browser.close(), sleep(5000)]); } catch {} }
    killAll();
    try { fs.rmSync(path.join(dir, "profile"), { recursive: true, force: true }); } catch {}
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    // Synchronous on purpose: nothing else may print after this. Chromium
    // dies with this process (and with run.sh's process-group kill).
    process.on(sig, () => {
        killAll();
        log(`browser: interrupted by ${sig}`);
        log(`browser: ${passed} passed, ${failed + 1} failed`);
        process.exit(1);
    });
}
const watchdog = setTimeout(async () => {
    log(`FAIL watchdog: the run took longer than ${TOTAL_BUDGET_MS / 1000} s`);
    await cleanup();
    log(`browser: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
}, TOTAL_BUDGET_MS);

// ---------------------------------------------------------------- helpers
function freePorts(n) {
    // Hold all n listeners at once so the kernel hands out distinct ports.
    return new Promise((resolve, reject) => {
        const servers = [], ports = [];
        const next = () => {
            if (servers.length === n) {
                let closed = 0;
                for (const s of servers) s.close(() => { if (++closed === n) resolve(ports); });
                return;
            }
            const s = net.createServer();
            s.on("error", reject);
            s.listen(0, "127.0.0.1", () => { servers.push(s); ports.push(s.address().port); next(); });
        };
        next();
    });
}

function portOpen(port) {
    return new Promise((resolve) => {
        const s = net.connect({ host: "127.0.0.1", port });
        const done = (ok) => { s.destroy(); resolve(ok); };
        s.once("connect", () => done(true));
        s.once("error", () => done(false));
        s.setTimeout(500, () => done(false));
    });
}

async function waitPort(port, name, ms = 5000) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        const p = procs.get(name);
        if (p && (p.exitCode !== null || p.signalCode !== null))
            throw new Error(`${name} exited (${p.exitCode ?? p.signalCode}); see ${dir}/${name}.log`);
        if (await portOpen(port)) return;
        await sleep(50);
    }
    throw new Error(`${name} did not listen on 127.0.0.1:${port} within ${ms} ms; see ${dir}/${name}.log`);
}

function start(name, cmd, args) {
    const out = fs.openSync(path.join(dir, name + ".log"), "a");
    const p = spawn(cmd, args, { cwd: top, stdio: ["ignore", out, out] });
    fs.closeSync(out);
    procs.set(name, p);
    return p;
}

async function kill9(name) {
    const p = procs.get(name);
    if (!p) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await Promise.race([gone, sleep(3000)]);
    procs.delete(name);
}

function sql(query) {
    return execFileSync("sqlite3", ["-cmd", ".timeout 3000", db, query],
                        { encoding: "utf8", timeout: 5000 }).trim();
}
const sqlQuote = (s) => "'" + String(s).replace(/'/g, "''") + "'";
function insert(data, channel = CHANNEL) {
    return Number(sql(`INSERT INTO messages(channel,event,data) VALUES(${sqlQuote(channel)},NULL,${sqlQuote(data)});` +
                      " SELECT last_insert_rowid();"));
}

// Poll fn (sync or async) until it returns a truthy value, at most ms.
async function until(fn, ms, what) {
    const end = Date.now() + ms;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() >= end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(50);
    }
}

// Counts of li[data-id] per id in a list, and the notes.
async function listState(page, listId) {
    return page.evaluate((listId) => {
        const counts = {};
        for (const li of document.querySelectorAll(`#${listId} li[data-id]`))
            counts[li.dataset.id] = (counts[li.dataset.id] || 0) + 1;
        const notes = [...document.querySelectorAll(`#${listId} li.note`)].map((li) => li.textContent);
        const texts = [...document.querySelectorAll(`#${listId} li[data-id]`)].map((li) => li.textContent);
        return { counts, notes, texts };
    }, listId);
}
const dupes = (counts) => Object.entries(counts).filter(([, n]) => n > 1).map(([id, n]) => `#${id}x${n}`);
const stateText = (page, id) => page.$eval("#" + id, (el) => el.className + ":" + el.textContent);

async function runCase(name, fn) {
    const t0 = Date.now();
    try {
        await fn();
        passed++;
        log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
        failed++;
        log(`FAIL ${name} (${Date.now() - t0} ms): ${e.message.split("\n")[0]}`);
        if (page) {
            const shot = path.join(dir, `fail-${name.split(" ")[0]}.png`);
            try { await page.screenshot({ path: shot, fullPage: true, timeout: 5000 }); log(`     screenshot ${shot}`); }
            catch {}
        }
    }
}

// ---------------------------------------------------------------- setup
const [port, fcgiPort, wsPort] = await freePorts(3);
// BROWSER_PAGE=/path/to/index.html tries a changed page without touching demo/.
fs.copyFileSync(process.env.BROWSER_PAGE || path.join(top, "demo/index.html"), path.join(dir, "index.html"));
fs.copyFileSync(path.join(top, "js/litepush.js"), path.join(dir, "litepush.js"));
// The same substitutions as demo/run.sh.
const conf = fs.readFileSync(path.join(top, "demo/lighttpd.conf.in"), "utf8")
    .replaceAll("@DOCROOT@", dir).replaceAll("@PORT@", String(port))
    .replaceAll("@FCGI_PORT@", String(fcgiPort)).replaceAll("@WS_PORT@", String(wsPort))
    .replaceAll("@DIR@", dir);
fs.writeFileSync(path.join(dir, "lighttpd.conf"), conf);

const startResponder = () => start("litepush", "cgi-bin/litepush.fcgi",
                                   ["--db", db, "--listen", `127.0.0.1:${fcgiPort}`]);
const startHelper = () => start("litepush-ws", "./litepush-ws",
                                ["--db", db, "--listen", `127.0.0.1:${wsPort}`, "--allow-publish"]);
const base = `http://127.0.0.1:${port}/`;
let page = null;
const consoleErrors = [];
const pageErrors = [];
let startedId = 0;

log(`browser: temp dir ${dir} (web ${port}, fcgi ${fcgiPort}, ws ${wsPort})`);
try {
    startResponder();
    await waitPort(fcgiPort, "litepush");
    startHelper();
    await waitPort(wsPort, "litepush-ws");
    start("lighttpd", "lighttpd", ["-D", "-f", path.join(dir, "lighttpd.conf")]);
    await waitPort(port, "lighttpd");
    startedId = insert("litepush demo started");

    browser = await chromium.launchPersistentContext(path.join(dir, "profile"), {
        executablePath: CHROMIUM,
        headless: true,
        timeout: 20_000,
        viewport: { width: 1100, height: 760 },
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = browser.pages()[0] || await browser.newPage();
    page.setDefaultTimeout(5000);
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    // Everything must stay on loopback.
    await page.route("**/*", (route) => {
        const u = new URL(route.request().url());
        if (u.hostname === "127.0.0.1") return route.continue();
        return route.abort();
    });
} catch (e) {
    log(`FAIL setup: ${e.message.split("\n")[0]}`);
    await cleanup();
    clearTimeout(watchdog);
    log(`browser: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
}

// ---------------------------------------------------------------- cases
const hasRow = async (listId, id) => ((await listState(page, listId)).counts[id] || 0) >= 1;

await runCase("1 page loads, both lists show the started row", async () => {
    const resp = await page.goto(base, { timeout: 10_000 });
    if (!resp || resp.status() !== 200) throw new Error(`GET / answered ${resp && resp.status()}`);
    await until(async () => await hasRow("sse-list", startedId) && await hasRow("ws-list", startedId),
                5000, `row #${startedId} in both lists`);
    for (const l of ["sse-list", "ws-list"]) {
        const t = await page.textContent(`#${l} li[data-id="${startedId}"]`);
        if (!t.includes("litepush demo started")) throw new Error(`${l} row #${startedId} reads "${t}"`);
    }
    await until(async () => (await stateText(page, "sse-state")) === "state open:open" &&
                             (await stateText(page, "ws-state")) === "state open:open", 3000,
                "both state badges to read open");
});

await runCase("2 sqlite3 INSERT shows up in both lists within 2 s", async () => {
    const id = insert("inserted by sqlite3 " + Date.now());
    await until(async () => await hasRow("sse-list", id) && await hasRow("ws-list", id), 2000,
                `row #${id} in both lists`);
});

await runCase("3 publish form: row in both lists and in the table", async () => {
    const text = "published from the page " + Date.now();
    await page.fill("#data", text);
    await page.click("#pub button");
    const id = Number(await until(() => sql(`SELECT id FROM messages WHERE data=${sqlQuote(text)}`), 3000,
                                  "the published row in the table"));
    const ch = sql(`SELECT channel || '|' || ifnull(event,'NULL') FROM messages WHERE id=${id}`);
    if (ch !== `${CHANNEL}|NULL`) throw new Error(`row #${id} stored as channel|event = ${ch}`);
    await until(async () => await hasRow("sse-list", id) && await hasRow("ws-list", id), 3000,
                `row #${id} in both lists`);
    const t = await page.textContent(`#sse-list li[data-id="${id}"]`);
    if (!t.includes(text)) throw new Error(`SSE row #${id} reads "${t}"`);
    // The client resolves the publish with the stored row's id.
    const ps = await until(async () => { const t = await page.textContent("#pubstate");
                                         return t !== "sending" && t; }, 3000, "#pubstate to settle");
    if (ps !== `published #${id}`) throw new Error(`#pubstate reads "${ps}", not "published #${id}"`);
});

// Kill one side, insert 5 rows while it is down, restart it on the same port,
// and expect each of the 5 exactly once in that side's list, no duplicate of
// any earlier row, and a "reconnected" note. holdMs keeps the outage going
// after the inserts (long enough for the browser to retry against the dead
// backend at least once).
async function outage({ name, listId, otherListId, stateId, restart, port: p, holdMs }) {
    const before = await listState(page, listId);
    const notesBefore = before.notes.length;
    await kill9(name);
    // The page notices the drop.
    await until(async () => (await stateText(page, stateId)) !== "state open:open", 5000,
                `#${stateId} to leave "open" after kill -9`);
    const ids = [];
    for (let i = 1; i <= 5; i++) ids.push(insert(`during ${name} outage ${i}/5`));
    // The other side keeps getting them live.
    await until(async () => {
        const o = (await listState(page, otherListId)).counts;
        return ids.every((id) => o[id] === 1);
    }, 3000, `the outage rows live in #${otherListId}`);
    await sleep(holdMs);
    if ((await portOpen(p))) throw new Error(`port ${p} still open while ${name} is dead`);
    restart();
    await waitPort(p, name);
    const seen = await until(async () => {
        const s = await listState(page, listId);
        return ids.every((id) => s.counts[id] >= 1) && s.notes.length > notesBefore ? s : null;
    }, 20_000, `rows ${ids.map((i) => "#" + i).join(",")} and a reconnection note in #${listId}`).catch(async (e) => {
        const s = await listState(page, listId);
        throw new Error(`${e.message}; have ${ids.filter((id) => s.counts[id]).map((i) => "#" + i).join(",") || "none"}` +
                        `, notes ${JSON.stringify(s.notes.slice(notesBefore))}, badge ${await stateText(page, stateId)}`);
    });
    await sleep(500);   // let any late duplicate arrive before counting
    const s = await listState(page, listId);
    const wrong = ids.filter((id) => s.counts[id] !== 1).map((id) => `#${id}x${s.counts[id] || 0}`);
    if (wrong.length) throw new Error(`outage rows not exactly once: ${wrong.join(" ")}`);
    const d = dupes(s.counts);
    if (d.length) throw new Error(`duplicates in #${listId}: ${d.join(" ")}`);
    for (const id of Object.keys(before.counts))
        if (s.counts[id] !== 1) throw new Error(`earlier row #${id} now appears ${s.counts[id] || 0} times`);
    if (!seen.notes.slice(notesBefore).some((n) => n.includes("reconnected")))
        throw new Error(`no "reconnected" note, notes: ${JSON.stringify(seen.notes)}`);
    await until(async () => (await stateText(page, stateId)) === "state open:open", 2000,
                `#${stateId} to read open again`);
    // And it is live again.
    const id = insert(`after ${name} restart`);
    await until(async () => await hasRow(listId, id) && await hasRow(otherListId, id), 2000,
                `row #${id} live in both lists after the restart`);
}

// Each outage case starts from a page with both sides open, so that one
// failure does not cascade: when a side is still down from an earlier case the
// page is reloaded first (and that is said).
async function bothOpen() {
    const ok = async () => (await stateText(page, "sse-state")) === "state open:open" &&
                           (await stateText(page, "ws-state")) === "state open:open";
    if (await ok()) return;
    log(`     (reloading the page: badges ${await stateText(page, "sse-state")}, ${await stateText(page, "ws-state")})`);
    await page.reload({ timeout: 10_000 });
    await until(ok, 5000, "both badges open after a reload");
}

// Quick: restarted right after the inserts, before EventSource's 3 s retry
// (and within the WS backoff) fires. Long: the outage outlasts a reconnect
// attempt, so the browser meets lighttpd's 503 for the dead backend first.
const LONG_MS = Number(process.env.OUTAGE_HOLD_MS ?? 4000);
for (const [tag, hold] of [["a", 0], ["b", LONG_MS]]) {
    await runCase(`4${tag} SSE responder kill -9, 5 inserts, restart after ${hold} ms: each row exactly once`,
        async () => { await bothOpen();
            await outage({ name: "litepush", listId: "sse-list", otherListId: "ws-list", stateId: "sse-state",
                           restart: startResponder, port: fcgiPort, holdMs: hold }); });
}
for (const [tag, hold] of [["a", 0], ["b", LONG_MS]]) {
    await runCase(`5${tag} WS helper kill -9, 5 inserts, restart after ${hold} ms: each row exactly once`,
        async () => { await bothOpen();
            await outage({ name: "litepush-ws", listId: "ws-list", otherListId: "sse-list", stateId: "ws-state",
                           restart: startHelper, port: wsPort, holdMs: hold }); });
}

await runCase("6 no script errors on the page", async () => {
    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join(" | ")}`);
});

try {
    const shot = path.join(dir, "page.png");
    await page.screenshot({ path: shot, fullPage: true, timeout: 5000 });
    log(`browser: screenshot ${shot}`);
} catch (e) {
    log(`browser: screenshot failed: ${e.message.split("\n")[0]}`);
}
if (consoleErrors.length) log(`browser: console errors (expected during outages): ${consoleErrors.length}`);
await cleanup();
clearTimeout(watchdog);
log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
