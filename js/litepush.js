// litepush.js — browser client for litepush: one subscription over WebSocket
// or Server-Sent Events, with reconnect, resume by last id, duplicate
// dropping, heartbeat-loss detection, token refresh and publishing.
// No dependencies, no build step.
//
// Loading. This file is an ES module:
//     import { subscribe } from "/litepush/litepush.js";
// When it runs it also sets globalThis.litepush (unless something else
// already did), so classic scripts can use it too: load it with
//     <script type="module" src="/litepush/litepush.js"></script>
//     <script defer src="app.js"></script>     (app.js uses litepush.subscribe)
// Module and deferred scripts run in document order, before DOMContentLoaded,
// so a deferred classic script (or a DOMContentLoaded handler) placed after
// it finds globalThis.litepush. A file with `export` cannot be parsed as a
// classic script, so `<script src>` without type="module" does not work;
// every browser with the streaming fetch this client needs also has modules.
//
// Design notes (the README has the user-facing version):
// - SSE is read with fetch() and a streaming body, not EventSource.
//   EventSource hides the HTTP status (401, 403 and 503 all look alike, and
//   it gives up for good on any of them), hides the server's keepalive
//   comments (so a dead but open stream cannot be told from an idle one),
//   and delivers only the event types a listener was added for. With fetch
//   the client sees every comment, so heartbeat loss is silence longer than
//   2.5 heartbeats, and it sees 401/403 and the server's one-line reason.
//   The resume id goes in the lastEventId query parameter on every connect.
// - WebSocket: browsers answer the server's pings by themselves and JS never
//   sees them, so an idle healthy connection is silent to the page. After
//   one heartbeat of silence the client sends {"ping":N}, which the server
//   answers with {"pong":N} (an older server, without pings, answers it
//   with an {"error":...}: any answer will do), and gives the connection up
//   when nothing at all arrives within another 1.5 heartbeats.
// - Where a subscription without lastEventId starts: SSE sends an id-only
//   block (id: N, no data) when the stream goes live, and the WebSocket
//   sends {"position":N} first when asked with ?position=1. Either sets the
//   last id, so a reconnect before the first row loses nothing.
// - Duplicates: ids only grow within the log, so a row whose id is not above
//   the last one seen is dropped. litepush.reset moves the last id to its
//   own id (down too, after a restored log) and goes to onReset.
// - Publish confirmation: each publish carries "ref" (a number unique to
//   the subscription) and litepush-ws answers it with
//   {"ok":true,"ref":R,"id":N} or {"error":"...","ref":R}; publishes are
//   pipelined and matched by ref. A server that ignores ref (older than
//   this file) sends no answer: such a publish rejects as "unconfirmed"
//   after publishTimeoutMs, although its row may be stored.
const DEFAULTS = {
    transport: "auto",       // "ws", "sse" or "auto" (WebSocket, SSE when the upgrade fails)
    heartbeatMs: 15000,      // the server's --heartbeat (SSE) and the WS silence before a probe
    minDelayMs: 500,         // first reconnect delay; doubles per failed attempt, with jitter
    maxDelayMs: 15000,       // longest reconnect delay
    connectTimeoutMs: 15000, // give up on an attempt that gets no answer
    wsRetryMs: 60000,        // auto: time on SSE before the WebSocket is tried again
    publishTimeoutMs: 15000, // a publish the server neither acks nor refuses in time is rejected
    refreshBeforeMs: 30000,  // fetch a new token this long before exp (at most 20% of its life)
    lastEventId: null,       // resume after this id (0: the whole retained history)
    credentials: "same-origin",
};

const RESET = "litepush.reset";
const EXPIRED = "litepush.expired";

export function subscribe(options) {
    return new Subscription(options || {});
}

// Decodes the payload of a JWT (no signature check: the server does that)
// and returns its exp in milliseconds, or null.
export function tokenExpiry(token) {
    try {
        const part = String(token).split(".")[1];
        const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
        const json = atob(b64 + "===".slice((b64.length + 3) % 4));
        const exp = JSON.parse(json).exp;
        return typeof exp === "number" ? exp * 1000 : null;
    } catch {
        return null;
    }
}

function absolute(url, base, ws) {
    const u = new URL(url, base);
    if (ws && u.protocol === "http:") u.protocol = "ws:";
    if (ws && u.protocol === "https:") u.protocol = "wss:";
    return u;
}

class Subscription {
    constructor(o) {
        this.o = Object.assign({}, DEFAULTS, o);
        const page = (globalThis.location && globalThis.location.href) || "http://localhost/";
        const base = new URL(this.o.url || "/", page);
        if (!base.pathname.endsWith("/")) base.pathname += "/";
        this.sseUrl = absolute(this.o.sseUrl || "events", base, false);
        this.wsUrl = absolute(this.o.wsUrl || "ws", base, true);
        const ch = this.o.channels ?? this.o.channel ?? "default";
        this.channels = (Array.isArray(ch) ? ch : [ch]).map(String);
        if (!["ws", "sse", "auto"].includes(this.o.transport))
            throw new TypeError('transport must be "ws", "sse" or "auto"');
        this.lastId = this.o.lastEventId == null ? null : Number(this.o.lastEventId);
        this.state = "";
        this.transport = null;    // of the connection in use
        this.conn = null;         // the connection in use: {kind, close(), ...}
        this.trial = null;        // auto: a WebSocket being tried while SSE runs
        this.gen = 0;             // bumped whenever the connection in use changes
        this.attempt = 0;         // failed attempts in a row (for the back-off)
        this.wsFailedAt = 0;      // auto: when the WebSocket last failed to open
        this.token = null;
        this.tokenExp = null;
        this.needToken = !!this.o.getToken;
        this.timers = new Set();
        this.refreshTimer = null;
        this.wsRetryTimer = null;
        this.pending = new Map(); // WS: ref -> publish awaiting its answer
        this.refSeq = 0;          // the last ref (and ping number) used
        this.closed = false;
        this.onOnline = () => { if (this.state === "reconnecting") this.reconnectNow(); };
        globalThis.addEventListener?.("online", this.onOnline);
        this.connect();
    }

    // ---- public handle
    get lastEventId() { return this.lastId; }

    close() {
        if (this.closed) return;
        this.closed = true;
        globalThis.removeEventListener?.("online", this.onOnline);
        for (const t of this.timers) clearTimeout(t);
        this.timers.clear();
        this.dropConn("closed");
        this.dropTrial();
        this.failPending("subscription closed");
        this.setState("closed", {});
    }

    // Resolves with the new row's id once the server has stored it; any
    // channel may be published to, read by this subscription or not.
    publish(channel, event, data) {
        return new Promise((resolve, reject) => {
            channel = channel == null ? "default" : String(channel);
            if (this.closed) return reject(pubError("subscription closed", "closed"));
            const c = this.conn;
            if (!c || c.kind !== "ws" || !c.isOpen)
                return reject(pubError("publish needs an open WebSocket connection", "not-connected"));
            const ref = ++this.refSeq;
            const msg = { channel, data: typeof data === "string" ? data : JSON.stringify(data), ref };
            if (event != null) msg.event = String(event);
            const r = { resolve, reject };
            r.timer = this.later(() => { if (this.pending.get(ref) === r)
                this.settle(ref, "no confirmation within " + this.o.publishTimeoutMs +
                            " ms; the row may have been stored", undefined, "unconfirmed"); },
                this.o.publishTimeoutMs);
            this.pending.set(ref, r);
            try { c.ws.send(JSON.stringify(msg)); }
            catch (e) { this.settle(ref, "send failed: " + (e && e.message), undefined, "not-connected"); }
        });
    }

    // ---- timers that close() clears
    later(fn, ms) {
        const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
        this.timers.add(t);
        return t;
    }
    cancel(t) { if (t) { clearTimeout(t); this.timers.delete(t); } }

    setState(state, detail) {
        if (this.state === state && state !== "reconnecting") return;
        this.state = state;
        this.o.onStateChange?.(state, Object.assign({ transport: this.transport }, detail));
    }

    emitError(err) {
        if (this.o.onError) this.o.onError(err);
    }

    // ---- connecting
    query(extra) {
        const q = new URLSearchParams();
        for (const c of this.channels) q.append("channel", c);
        if (this.lastId != null) q.set("lastEventId", String(this.lastId));
        if (this.token) q.set("token", this.token);
        for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
        return "?" + q.toString();
    }

    async ensureToken(force) {
        if (!this.o.getToken) return;
        const soon = this.tokenExp != null && this.tokenExp - Date.now() < 2000;
        if (!force && this.token && !soon && !this.needToken) return;
        const t = await this.o.getToken();
        this.token = t ? String(t) : null;
        this.tokenExp = this.token ? tokenExpiry(this.token) : null;
        this.needToken = false;
        this.scheduleRefresh();
    }

    scheduleRefresh() {
        this.cancel(this.refreshTimer);
        this.refreshTimer = null;
        if (this.tokenExp == null) return;
        const left = this.tokenExp - Date.now();
        const lead = Math.min(this.o.refreshBeforeMs, Math.max(1000, left * 0.2));
        this.refreshTimer = this.later(() => this.refresh(), Math.max(0, left - lead));
    }

    // Before exp: a new token, then a new connection resuming from the last id.
    refresh() {
        if (this.closed) return;
        if (this.pending.size) {                    // let the publishes be answered first
            if (this.tokenExp == null || this.tokenExp - Date.now() > 500) {
                this.refreshTimer = this.later(() => this.refresh(), 200);
                return;
            }
        }
        this.needToken = true;
        this.reconnectNow("token refresh");
    }

    reconnectNow(why) {
        if (this.closed) return;
        this.dropConn(why || "reconnect");
        this.dropTrial();
        this.connect();
    }

    pickTransport() {
        if (this.o.transport !== "auto") return this.o.transport;
        return this.wsFailedAt && Date.now() - this.wsFailedAt < this.o.wsRetryMs ? "sse" : "ws";
    }

    async connect() {
        if (this.closed) return;
        const gen = ++this.gen;
        const kind = this.pickTransport();
        this.transport = kind;
        if (this.state !== "connecting" && this.state !== "reconnecting")
            this.setState(this.everOpen ? "reconnecting" : "connecting", { attempt: this.attempt });
        try {
            await this.ensureToken(this.needToken);
        } catch (e) {
            if (gen !== this.gen || this.closed) return;
            this.emitError(Object.assign(new Error("getToken failed: " + (e && e.message)),
                                         { code: "token", cause: e }));
            return this.retry(gen, "getToken failed");
        }
        if (gen !== this.gen || this.closed) return;
        this.conn = kind === "ws" ? this.openWs(gen, false) : this.openSse(gen);
    }

    // The connection in use failed or ended: try again after a jittered,
    // exponentially growing delay (immediately after a clean token refresh).
    retry(gen, reason, delayMs) {
        if (gen !== this.gen || this.closed) return;
        this.dropConn(reason);
        if (delayMs === 0) {        // at once, but not twice in a row within 2 s (no tight loop)
            if (Date.now() - (this.fastRetryAt || 0) < 2000) delayMs = undefined;
            else this.fastRetryAt = Date.now();
        }
        const n = this.attempt++;
        const cap = Math.min(this.o.maxDelayMs, this.o.minDelayMs * 2 ** Math.min(n, 20));
        const delay = delayMs ?? cap / 2 + Math.random() * cap / 2;
        this.setState("reconnecting", { attempt: this.attempt, delayMs: Math.round(delay), reason });
        const g = ++this.gen;
        this.later(() => { if (g === this.gen) this.connect(); }, delay);
    }

    opened(kind) {
        this.everOpen = true;
        this.openedAt = Date.now();
        this.setState("open", { transport: kind });
        if (kind === "sse" && this.o.transport === "auto") this.scheduleWsTrial();
    }

    // A connection that stayed up a while earns a fresh back-off.
    ended() {
        if (this.openedAt && Date.now() - this.openedAt > 2 * this.o.minDelayMs) this.attempt = 0;
        this.openedAt = 0;
    }

    dropConn(why) {
        this.cancel(this.wsRetryTimer);
        this.wsRetryTimer = null;
        const c = this.conn;
        this.conn = null;
        if (c) {
            c.close();
            if (c.kind === "ws") this.failPending("connection closed before the server answered" +
                " (" + why + "); the row may have been stored");
        }
    }

    // ---- rows
    deliver(m, kind) {
        if (m.event === RESET) {
            let info = {};
            try { info = JSON.parse(m.data); } catch { info = { data: m.data }; }
            this.lastId = m.id;
            this.o.onReset?.(Object.assign({ id: m.id, transport: kind }, info));
            return;
        }
        if (this.lastId != null && m.id <= this.lastId) return;   // seen already
        this.lastId = m.id;
        this.o.onMessage?.(m);
    }

    // ---- SSE over fetch
    openSse(gen) {
        const ctrl = new AbortController();
        const conn = { kind: "sse", isOpen: false, close: () => ctrl.abort() };
        const url = this.sseUrl.href.split("?")[0] + this.query();
        let watchdog = null;
        const arm = (ms, why) => {
            this.cancel(watchdog);
            watchdog = this.later(() => { ctrl.abort(); this.retry(gen, why); }, ms);
        };
        arm(this.o.connectTimeoutMs, "no answer from the server");
        (async () => {
            let res;
            try {
                res = await fetch(url, { signal: ctrl.signal, cache: "no-store",
                                         credentials: this.o.credentials,
                                         headers: { Accept: "text/event-stream" } });
            } catch (e) {
                this.cancel(watchdog);
                if (gen === this.gen) this.retry(gen, "network error");
                return;
            }
            if (gen !== this.gen) { ctrl.abort(); this.cancel(watchdog); return; }
            const type = res.headers.get("content-type") || "";
            if (!res.ok || !type.startsWith("text/event-stream")) {
                this.cancel(watchdog);
                let why = "";
                try { why = (await res.text()).trim().slice(0, 200); } catch {}
                if (gen !== this.gen) return;
                const err = Object.assign(new Error(`SSE answered ${res.status}` + (why ? ": " + why : "")),
                                          { status: res.status, code: "http" });
                if (res.status === 401 || res.status === 403) {
                    err.code = "auth";
                    if (this.o.getToken) this.needToken = true;
                }
                this.emitError(err);
                const ra = Number(res.headers.get("retry-after"));
                return this.retry(gen, `HTTP ${res.status}`, ra > 0 ? ra * 1000 : undefined);
            }
            conn.isOpen = true;
            this.opened("sse");
            const silence = this.o.heartbeatMs * 2.5;
            arm(silence, "heartbeat lost");
            const parser = sseParser((ev) => {
                if (gen !== this.gen) return;
                if (ev.type === EXPIRED) {       // the token ended the stream
                    this.needToken = true;
                    this.cancel(watchdog);
                    ctrl.abort();
                    this.ended();
                    return this.retry(gen, "token expired", 0);
                }
                if (ev.id === "" || !/^\d+$/.test(ev.id)) return;
                if (ev.data === null) {          // a position without a row: a resume point
                    if (this.lastId == null) this.lastId = Number(ev.id);
                    return;
                }
                this.deliver({ id: Number(ev.id), channel: this.channels.length === 1 ? this.channels[0] : null,
                               event: ev.type === "message" ? null : ev.type, data: ev.data }, "sse");
            });
            try {
                const reader = res.body.getReader();
                const dec = new TextDecoder();
                for (;;) {
                    const { done, value } = await reader.read();
                    if (gen !== this.gen) { ctrl.abort(); break; }
                    if (done) { parser(dec.decode(), true); break; }
                    arm(silence, "heartbeat lost");
                    parser(dec.decode(value, { stream: true }), false);
                }
            } catch {}
            this.cancel(watchdog);
            if (gen === this.gen) { this.ended(); this.retry(gen, "stream ended"); }
        })();
        return conn;
    }

    // auto: while on SSE, try the WebSocket again every wsRetryMs; switch
    // when it opens (rows that both carry are dropped by id).
    scheduleWsTrial() {
        this.cancel(this.wsRetryTimer);
        this.wsRetryTimer = this.later(() => {
            this.wsRetryTimer = null;
            if (this.closed || !this.conn || this.conn.kind !== "sse" || this.trial) return;
            this.trial = this.openWs(this.gen, true);
        }, this.o.wsRetryMs);
    }

    dropTrial() {
        const t = this.trial;
        this.trial = null;
        if (t) t.close();
    }

    // ---- WebSocket
    openWs(gen, isTrial) {
        // Without a last id, ask where the connection starts ({"position":N}).
        const ws = new WebSocket(this.wsUrl.href.split("?")[0] +
                                 this.query(this.lastId == null ? { position: "1" } : null));
        const conn = { kind: "ws", isOpen: false, ws, close: () => { try { ws.close(1000); } catch {} } };
        let silenceTimer = null, deadTimer = null;
        const connectTimer = this.later(() => { try { ws.close(); } catch {} fail("no answer from the server"); },
                                        this.o.connectTimeoutMs);
        const quiet = () => {                       // any frame proves the connection alive
            this.cancel(deadTimer); deadTimer = null;
            this.cancel(silenceTimer);
            silenceTimer = this.later(() => {
                if (this.conn === conn) {
                    conn.probes = (conn.probes || 0) + 1;
                    try { ws.send(JSON.stringify({ ping: ++this.refSeq })); } catch {}
                }
                deadTimer = this.later(() => { try { ws.close(); } catch {} fail("heartbeat lost"); },
                                       this.o.heartbeatMs * 1.5);
            }, this.o.heartbeatMs);
        };
        let failed = false;
        const fail = (why, code) => {
            if (failed) return;
            failed = true;
            this.cancel(connectTimer); this.cancel(silenceTimer); this.cancel(deadTimer);
            if (this.trial === conn) {                  // auto: the WebSocket is still not usable
                this.trial = null;
                if (!conn.isOpen) this.wsFailedAt = Date.now();
                if (this.conn && this.conn.kind === "sse") this.scheduleWsTrial();
                return;
            }
            if (this.conn !== conn) return;
            if (!conn.isOpen && this.o.transport === "auto") {
                this.wsFailedAt = Date.now();        // fall back to SSE, at once
                this.attempt = Math.max(0, this.attempt - 1);
                return this.retry(this.gen, why + "; trying SSE", 0);
            }
            if (!conn.isOpen && this.o.getToken) this.needToken = true;   // a 401/403 looks like this
            if (code === 1008) {                    // policy: token expired or refused
                this.needToken = true;
                this.ended();
                return this.retry(this.gen, why, 0);
            }
            if (conn.isOpen) this.ended();
            this.retry(this.gen, why);
        };
        ws.onopen = () => {
            this.cancel(connectTimer);
            conn.isOpen = true;
            if (isTrial) {
                if (this.trial !== conn || this.closed) { conn.close(); return; }
                this.trial = null;
                this.dropConn("switching to WebSocket");
                this.conn = conn;
                this.gen++;
            } else if (this.conn !== conn) { conn.close(); return; }
            this.wsFailedAt = 0;
            this.transport = "ws";
            quiet();
            this.opened("ws");
        };
        ws.onmessage = (e) => {
            if (this.conn !== conn) return;
            quiet();
            let m;
            try { m = JSON.parse(e.data); } catch { return; }
            if (!m || typeof m !== "object") return;
            if (m.ref !== undefined && (m.ok === true || typeof m.error === "string")) {
                this.settle(m.ref, m.ok === true ? null : m.error, m.id);   // a publish's answer
                return;
            }
            if (typeof m.error === "string") {
                if (conn.probes > 0) conn.probes--;     // an older server's answer to a ping
                else this.emitError(Object.assign(new Error(m.error), { code: "server" }));
                return;
            }
            if (m.pong !== undefined) { if (conn.probes > 0) conn.probes--; return; }
            if (typeof m.position === "number" && m.id === undefined) {
                if (this.lastId == null) this.lastId = m.position;   // where a fresh connection starts
                return;
            }
            if (typeof m.id !== "number") return;
            this.deliver(m, "ws");
        };
        ws.onclose = (e) => {
            const why = e.code === 1006 || !e.code ? (conn.isOpen ? "connection lost" : "WebSocket refused")
                                                   : `closed ${e.code}${e.reason ? " " + e.reason : ""}`;
            fail(why, e.code);
        };
        ws.onerror = () => {};
        return conn;
    }

    settle(ref, error, id, code) {
        const r = this.pending.get(ref);
        if (!r) return;
        this.pending.delete(ref);
        this.cancel(r.timer);
        if (error == null) r.resolve(id);
        else r.reject(pubError(error, code || "refused"));
    }

    failPending(why) {
        const all = [...this.pending.values()];
        this.pending.clear();
        for (const r of all) {
            this.cancel(r.timer);
            r.reject(pubError(why, "unconfirmed"));
        }
    }
}

function pubError(message, code) {
    return Object.assign(new Error(message), { code });
}

// A text/event-stream parser (WHATWG HTML, "Event stream interpretation"):
// CR, LF and CRLF end a line; comments start with ':'; data lines join with
// LF; an event is dispatched at a blank line when it has data. onEvent gets
// {type, data, id}, id being the last id field seen in the stream ("" if none).
// A block with an id field but no data (which moves EventSource's
// lastEventId without an event) is reported with data null.
export function sseParser(onEvent) {
    let buf = "", data = [], type = "", id = "", hasData = false, hasId = false;
    const line = (l) => {
        if (l === "") {
            if (hasData) onEvent({ type: type || "message", data: data.join("\n"), id });
            else if (hasId) onEvent({ type: type || "message", data: null, id });
            data = []; type = ""; hasData = false; hasId = false;
            return;
        }
        if (l[0] === ":") return;
        const i = l.indexOf(":");
        const field = i < 0 ? l : l.slice(0, i);
        let value = i < 0 ? "" : l.slice(i + 1);
        if (value[0] === " ") value = value.slice(1);
        if (field === "data") { data.push(value); hasData = true; }
        else if (field === "event") type = value;
        else if (field === "id" && !value.includes("\0")) { id = value; hasId = true; }
    };
    return (chunk, isEnd) => {
        buf += chunk;
        let start = 0;
        for (;;) {
            let i = start;
            while (i < buf.length && buf[i] !== "\n" && buf[i] !== "\r") i++;
            if (i >= buf.length) break;
            if (buf[i] === "\r" && i + 1 >= buf.length && !isEnd) break;   // maybe CRLF split
            line(buf.slice(start, i));
            start = i + (buf[i] === "\r" && buf[i + 1] === "\n" ? 2 : 1);
        }
        buf = buf.slice(start);
    };
}

const api = { subscribe, tokenExpiry, sseParser };
if (!globalThis.litepush) globalThis.litepush = api;
export default api;
