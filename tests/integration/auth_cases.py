"""Access-control cases for the integration tests (issue 9): a responder and
a litepush-ws started with --auth-keys, reached through Apache (/auth/events,
/auth/ws) and lighttpd (the same paths), and the helper directly.

Tokens come from PyJWT (Debian's python3-jwt, run with /usr/bin/python3,
since `python3` on PATH may be another build) and from litepush-token; the
malformed ones (RS256, bad base64, bad JSON under a valid HMAC) are built
here with the standard library.

run.py sets ENV and appends AUTH_CASES to its case list. Scopes: "auth-sse"
runs on auth-apache and auth-lighttpd, "auth-ws" on auth-ws-direct,
auth-ws-apache and auth-ws-lighttpd, "auth-all" on all five, and "cli" once."""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

from harness import (APACHE_MODULES, BIN, DB, PROCS, ROOT, WS_BIN, Fail, Procs, Skip, Stream, alive,
                     check, free_port, short, tcp_listening, wait_until)
from ws_raw import OP_CLOSE, OP_TEXT, RawWS

ENV = None                      # set by run.py
TOKEN_BIN = os.environ.get("LITEPUSH_TOKEN") or os.path.join(ROOT, "litepush-token")
DEBIAN_PYTHON = "/usr/bin/python3"

K_DEFAULT = "default-secret-for-tests-0123456789"     # kid "default" (a bare SECRET line)
K1 = "k1-secret-for-the-tests-0123456789ab"
K2 = "k2-secret-after-rotation-0123456789cd"
KEYS_TEXT = f"# litepush test keys\n{K_DEFAULT}\nk1 {K1}\n"
PUBLIC = ["pub.*", "open"]
CORS_ORIGIN = "https://app.example"
WS_ORIGIN = "https://app.example"
# What the shared auth processes run with (the ws one also publishes).
FCGI_AUTH_ARGS = ["--public", PUBLIC[0], "--public", PUBLIC[1], "--cors-origin", CORS_ORIGIN]
WS_AUTH_ARGS = ["--public", PUBLIC[0], "--public", PUBLIC[1], "--allow-publish",
                "--origin", WS_ORIGIN]
SUBSCRIBE = ["news.*", "room:*", "exact", "chat.*"]


# ------------------------------------------------------------------ tokens
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def raw_token(header, claims, secret=None, sig=None):
    """A compact JWS from bytes, signed with HMAC-SHA256 under secret (or
    with the given signature bytes)."""
    signing = f"{b64u(header)}.{b64u(claims)}"
    if sig is None:
        sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64u(sig)}"


def pyjwt(specs):
    """Mints tokens with PyJWT: specs is a list of (claims, key, alg, headers)."""
    prog = ("import json, sys, jwt\n"
            "out = []\n"
            "for claims, key, alg, headers in json.load(sys.stdin):\n"
            "    t = jwt.encode(claims, key, algorithm=alg, headers=headers)\n"
            "    out.append(t if isinstance(t, str) else t.decode())\n"
            "print(json.dumps(out))\n")
    r = subprocess.run([DEBIAN_PYTHON, "-c", prog], input=json.dumps(specs), capture_output=True,
                       text=True, timeout=20)
    if r.returncode != 0:
        raise Fail(f"PyJWT ({DEBIAN_PYTHON}, python3-jwt) failed: {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout)


def lp_token(*args, key_file=None):
    r = subprocess.run([TOKEN_BIN, "--key-file", key_file or ENV.keys_path, *args],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, f"litepush-token {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r.stdout.strip()


def claims(ttl=600, subscribe=SUBSCRIBE, publish=(), sub="tester", **extra):
    now = int(time.time())
    c = {"exp": now + ttl, "sub": sub, "litepush": {"subscribe": list(subscribe),
                                                    "publish": list(publish)}}
    c.update(extra)
    return c


_TOKENS = {}


def tokens():
    """Every token of the refusal table, minted once per run."""
    if _TOKENS:
        return _TOKENS
    now = int(time.time())
    rights = {"subscribe": SUBSCRIBE}
    names = ["good", "good_k1", "expired", "nbf_future", "hs512", "none", "unknown_kid",
             "no_rights", "nbf_now", "far"]
    minted = pyjwt([
        (claims(), K_DEFAULT, "HS256", None),
        (claims(), K1, "HS256", {"kid": "k1"}),
        ({"exp": now - 5, "litepush": rights}, K_DEFAULT, "HS256", None),
        ({"exp": now + 600, "nbf": now + 300, "litepush": rights}, K_DEFAULT, "HS256", None),
        ({"exp": now + 600, "litepush": rights}, K_DEFAULT, "HS512", None),
        ({"exp": now + 600, "litepush": rights}, None, "none", None),
        ({"exp": now + 600, "litepush": rights}, K_DEFAULT, "HS256", {"kid": "nope"}),
        ({"exp": now + 600}, K_DEFAULT, "HS256", None),
        ({"exp": now + 600, "nbf": now - 1, "litepush": rights}, K_DEFAULT, "HS256", None),
        ({"exp": 2 ** 63 - 1, "litepush": rights}, K_DEFAULT, "HS256", None),
    ])
    _TOKENS.update(zip(names, minted))
    g = _TOKENS["good"]
    head, body, sig = g.split(".")
    # A signature that decodes but does not match: one character changed.
    _TOKENS["bad_sig"] = f"{head}.{body}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"
    _TOKENS["rs256"] = raw_token(b'{"alg":"RS256","typ":"JWT"}',
                                 json.dumps({"exp": now + 600, "litepush": rights}).encode(),
                                 sig=os.urandom(256))
    _TOKENS["bad_b64"] = f"!!{head[2:]}.{body}.{sig}"
    _TOKENS["padded"] = f"{head}.{body}.{sig}="
    _TOKENS["bad_json"] = raw_token(b'{"alg":"HS256"}', b'{"exp":' + str(now + 600).encode(),
                                    K_DEFAULT)
    _TOKENS["header_array"] = raw_token(b'["HS256"]', b'{"exp":1}', K_DEFAULT)
    _TOKENS["exp_string"] = raw_token(b'{"alg":"HS256"}',
                                      json.dumps({"exp": str(now + 600)}).encode(), K_DEFAULT)
    _TOKENS["cli"] = lp_token("--kid", "k1", "--sub", "cli", "--subscribe", "news.*",
                              "--ttl", "600")
    return _TOKENS


# ------------------------------------------------------------------ targets
class AuthTarget:
    def __init__(self, name, kind, port, path):
        self.name, self.kind, self.port, self.path = name, kind, port, path
        self.responder = None
        self.full = True

    def ch(self, case):
        return f"{self.name}.{case}.{os.urandom(3).hex()}"

    def target(self, query):
        return self.path + ("?" + query if query else "")


def make_targets(env):
    return [AuthTarget("auth-apache", "sse", env.aport, "/auth/events"),
            AuthTarget("auth-lighttpd", "sse", env.lport, "/auth/events"),
            AuthTarget("auth-ws-direct", "ws", env.wsport_auth, "/ws"),
            AuthTarget("auth-ws-apache", "ws", env.aport, "/auth/ws"),
            AuthTarget("auth-ws-lighttpd", "ws", env.lport, "/auth/ws")]


def qs(channels, token=None, extra=""):
    q = "&".join(f"channel={c}" for c in channels)
    if token is not None:
        q += f"&token={token}"
    return q + extra


def attempt(t, query, headers=None):
    """One request: (status, headers, body). 200 (SSE) and 101 (WS) are the
    success answers; the connection is closed right after the head."""
    if t.kind == "sse":
        s = Stream(t.port, t.target(query), headers=headers)
        try:
            s.wait(lambda: s.status is not None, 5, "response head")
            if s.status != 200:
                s.wait(lambda: s.eof or (s.length is not None and len(s.body) >= s.length), 5,
                       "end of the refusal")
            return s.status, s.headers, s.body.decode("utf-8", "replace")
        finally:
            s.close()
    r = RawWS(t.port, t.target(query), headers=headers)
    try:
        st = r.read_head()
        body = r.read_body(2.0) if st != 101 else b""
        return st, r.headers, body.decode("utf-8", "replace")
    finally:
        r.close()


def ok_status(t):
    return 200 if t.kind == "sse" else 101


INVALID = 'Bearer error="invalid_token"'


# ------------------------------------------------------------------ cases
def auth_refusals(t):
    """Every refusal case of the contract, and the admissions next to them."""
    T = tokens()
    ok = ok_status(t)
    bearer = lambda k: {"Authorization": f"Bearer {T[k]}"}
    cookie = lambda k: {"Cookie": f"theme=dark; litepush_token={T[k]}"}
    rows = [
        # why, channels, query token, headers, status, WWW-Authenticate, body must contain
        ("no token", ["news.a"], None, None, 401, "Bearer", "needs a token"),
        ("expired", ["news.a"], None, bearer("expired"), 401, INVALID, "expired"),
        ("nbf in the future", ["news.a"], None, bearer("nbf_future"), 401, INVALID, "nbf"),
        ("nbf just passed", ["news.a"], None, bearer("nbf_now"), ok, None, ""),
        ("bad signature", ["news.a"], None, bearer("bad_sig"), 401, INVALID, "signature"),
        ("alg none", ["news.a"], None, bearer("none"), 401, INVALID, "HS256"),
        ("alg HS512", ["news.a"], None, bearer("hs512"), 401, INVALID, "HS256"),
        ("alg RS256", ["news.a"], None, bearer("rs256"), 401, INVALID, "HS256"),
        ("unknown kid", ["news.a"], None, bearer("unknown_kid"), 401, INVALID, "key id"),
        ("malformed base64", ["news.a"], None, bearer("bad_b64"), 401, INVALID, "JWT"),
        ("padded base64url", ["news.a"], None, bearer("padded"), 401, INVALID, "signature"),
        ("malformed claims JSON", ["news.a"], None, bearer("bad_json"), 401, INVALID, "claims"),
        ("header not an object", ["news.a"], None, bearer("header_array"), 401, INVALID, "header"),
        ("exp as a string", ["news.a"], None, bearer("exp_string"), 401, INVALID, "claims"),
        ("empty bearer", ["news.a"], None, {"Authorization": "Bearer "}, 401, INVALID, "JWT"),
        ("valid, default key", ["news.a"], None, bearer("good"), ok, None, ""),
        ("exp 2^63-1", ["news.a"], T["far"], None, ok, None, ""),
        ("valid, kid k1", ["news.a"], None, bearer("good_k1"), ok, None, ""),
        ("litepush-token", ["news.b"], T["cli"], None, ok, None, ""),
        ("litepush-token, not covered", ["room:1"], T["cli"], None, 403, None, "'room:1'"),
        ("prefix room:*", ["room:7", "news.x"], None, bearer("good"), ok, None, ""),
        ("prefix does not cover its stem", ["room"], None, bearer("good"), 403, None, "'room'"),
        ("exact pattern", ["exact"], None, bearer("good"), ok, None, ""),
        ("exact is not a prefix", ["exactly"], None, bearer("good"), 403, None, "'exactly'"),
        ("one channel not covered", ["news.a", "secret"], None, bearer("good"), 403, None,
         "'secret'"),
        ("token without rights", ["news.a"], T["no_rights"], None, 403, None, "'news.a'"),
        ("public, no token", ["pub.x", "open"], None, None, ok, None, ""),
        ("public and private, no token", ["pub.x", "news.a"], None, None, 401, "Bearer",
         "'news.a'"),
        ("public, expired token", ["pub.x"], None, bearer("expired"), 401, INVALID, "expired"),
        ("public, token without rights", ["pub.x"], T["no_rights"], None, ok, None, ""),
        ("query token", ["news.a"], T["good"], None, ok, None, ""),
        ("cookie token", ["news.a"], None, cookie("good"), ok, None, ""),
        ("bad header, good query", ["news.a"], T["good"], bearer("expired"), 401, INVALID,
         "expired"),
        ("good header, bad query", ["news.a"], T["expired"], bearer("good"), ok, None, ""),
        ("bad query, good cookie", ["news.a"], T["expired"], cookie("good"), 401, INVALID,
         "expired"),
        ("good query, bad cookie", ["news.a"], T["good"], cookie("expired"), ok, None, ""),
        ("bad cookie", ["news.a"], None, cookie("bad_sig"), 401, INVALID, "signature"),
        ("Basic is no bearer: cookie", ["news.a"], None,
         {"Authorization": "Basic dXNlcjpwYXNz", **cookie("good")}, ok, None, ""),
    ]
    problems = []
    for why, chans, qtok, hdr, want, www, body_has in rows:
        st, hd, body = attempt(t, qs(chans, qtok), hdr)
        got_www = hd.get("www-authenticate")
        if st != want:
            problems.append(f"{why}: expected {want}, got {st} ({body.strip()!r})")
        elif want in (401, 403):
            if got_www != www:
                problems.append(f"{why}: WWW-Authenticate {got_www!r}, expected {www!r}")
            if body_has not in body or "\n" in body.strip():
                problems.append(f"{why}: body {body!r} should be one line with {body_has!r}")
        elif got_www is not None:
            problems.append(f"{why}: admitted with WWW-Authenticate {got_www!r}")
    check(not problems, "; ".join(problems))
    return f"{len(rows)} requests"


def auth_stream_rows(t):
    """An admitted stream carries rows: tokens do not change the data path."""
    T = tokens()
    ch = "news." + os.urandom(3).hex()
    if t.kind == "sse":
        s = Stream(t.port, t.target(qs([ch, "pub.z"])),
                   headers={"Authorization": f"Bearer {T['good']}"}).open()
        try:
            ids = ENV.db.insert_rows([(ch, "one", "e"), ("pub.z", "two", None)])
            evs = s.wait_events(2)
            check([e["id"] for e in evs] == [str(i) for i in ids], f"rows: {short(evs)}")
        finally:
            s.close()
    else:
        r = RawWS(t.port, t.target(qs([ch], T["good"]))).open()
        try:
            rid = ENV.db.insert(ch, "one", "e")
            got = json.loads(r.recv_data())
            check(got["id"] == rid and got["data"] == "one", f"row: {got}")
        finally:
            r.close()


def _sse_expiry(t, ttl):
    ch = "news." + os.urandom(3).hex()
    short_tok, fresh = pyjwt([(claims(ttl=ttl), K_DEFAULT, "HS256", None),
                              (claims(), K_DEFAULT, "HS256", None)])
    s = Stream(t.port, t.target(qs([ch])), headers={"Authorization": f"Bearer {short_tok}"}).open()
    try:
        r1 = ENV.db.insert(ch, "before expiry")
        s.wait_events(1)
        s.wait(lambda: any(e["event"] == "litepush.expired" for e in s.events), ttl + 4,
               "litepush.expired")
        t_exp = time.monotonic()
        e = s.events[-1]
        check(e["event"] == "litepush.expired" and e["id"] is None,
              f"expired event: expected no id line, got {e['fields']}")
        check(json.loads(e["data"]) == {"reason": "token-expired"}, f"expired data {e['data']!r}")
        s.wait(lambda: s.eof, 5, "the end of the response after litepush.expired")
        check([x["id"] for x in s.events[:-1]] == [str(r1)], f"events {short(s.events)}")
    finally:
        s.close()
    r2 = ENV.db.insert(ch, "while away")
    s = Stream(t.port, t.target(qs([ch])), headers={"Authorization": f"Bearer {fresh}",
                                                    "Last-Event-ID": str(r1)}).open()
    try:
        s.wait_events(1)
        r3 = ENV.db.insert(ch, "live again")
        evs = s.wait_events(2)
        s.quiet(0.3)
        check([x["id"] for x in s.events] == [str(r2), str(r3)],
              f"resume after expiry: expected {r2},{r3}, got {[x['id'] for x in s.events]}")
    finally:
        s.close()
    return t_exp


def _ws_expiry(t, ttl):
    ch = "news." + os.urandom(3).hex()
    short_tok, fresh = pyjwt([(claims(ttl=ttl), K_DEFAULT, "HS256", None),
                              (claims(), K_DEFAULT, "HS256", None)])
    r = RawWS(t.port, t.target(qs([ch])), headers={"Authorization": f"Bearer {short_tok}"}).open()
    try:
        r1 = ENV.db.insert(ch, "before expiry")
        check(json.loads(r.recv_data())["id"] == r1, "row before expiry")
        f, before = r.expect_close(ttl + 4)
        check(f.close_code() == 1008 and f.payload[2:] == b"token expired",
              f"expected close 1008 'token expired', got {f.close_code()} {f.payload[2:]!r}")
        check(not before, f"frames before the close: {short(before)}")
    finally:
        r.close()
    r2 = ENV.db.insert(ch, "while away")
    r = RawWS(t.port, t.target(qs([ch], fresh, f"&lastEventId={r1}"))).open()
    try:
        check(json.loads(r.recv_data())["id"] == r2, "replayed row after expiry")
        r3 = ENV.db.insert(ch, "live again")
        check(json.loads(r.recv_data())["id"] == r3, "live row after resume")
    finally:
        r.close()


def auth_expiry(t):
    """A stream never outlives its token; resuming with a fresh token and
    the last id loses nothing."""
    t0 = time.monotonic()
    if t.kind == "sse":
        _sse_expiry(t, 3)
    else:
        _ws_expiry(t, 3)
    return f"{time.monotonic() - t0:.1f}s"


def _signal_and_wait(procs_logs, sig, text, count_before):
    for p, _ in procs_logs:
        os.kill(p.pid, sig)
    for p, log in procs_logs:
        wait_until(lambda: _log_count(log, text) > count_before[log], 5, f"'{text}' in {log}")


def _log_count(log, text):
    try:
        with open(os.path.join(ENV.dir, log), "rb") as f:
            return f.read().decode("utf-8", "replace").count(text)
    except OSError:
        return 0


def auth_rotation(_):
    """SIGHUP re-reads the key file: open streams stay, the removed key's
    tokens are refused from then on, the new key's accepted; a broken file
    leaves the keys in force."""
    procs = [(ENV.auth_fcgi.p, "responder-auth.log"), (ENV.auth_ws, "responder-ws-auth.log")]
    k1_tok, k2_tok = pyjwt([(claims(), K1, "HS256", {"kid": "k1"}),
                            (claims(), K2, "HS256", {"kid": "k2"})])
    sse_t = [x for x in make_targets(ENV) if x.kind == "sse"]
    ws_t = [x for x in make_targets(ENV) if x.kind == "ws"]
    ch = "news.rot." + os.urandom(3).hex()
    streams = [Stream(x.port, x.target(qs([ch])), headers={"Authorization": f"Bearer {k1_tok}"}).open()
               for x in sse_t]
    sockets = [RawWS(x.port, x.target(qs([ch], k1_tok))).open() for x in ws_t]
    try:
        for x in sse_t + ws_t:
            st, _, body = attempt(x, qs([ch]), {"Authorization": f"Bearer {k2_tok}"})
            check(st == 401 and "key id" in body, f"{x.name}: k2 before rotation: {st} {body!r}")
        with open(ENV.keys_path, "w") as f:
            f.write(f"{K_DEFAULT}\nk2 {K2}\n")
        before = {log: _log_count(log, "key file re-read") for _, log in procs}
        _signal_and_wait(procs, signal.SIGHUP, "key file re-read", before)
        for x in sse_t + ws_t:
            st, _, body = attempt(x, qs([ch]), {"Authorization": f"Bearer {k1_tok}"})
            check(st == 401 and "key id" in body, f"{x.name}: k1 after rotation: {st} {body!r}")
            st, _, body = attempt(x, qs([ch]), {"Authorization": f"Bearer {k2_tok}"})
            check(st == ok_status(x), f"{x.name}: k2 after rotation: {st} {body!r}")
        rid = ENV.db.insert(ch, "after rotation")
        for s in streams:
            s.wait_events(1)
            check(s.events[0]["id"] == str(rid) and not s.eof, "SSE stream kept over SIGHUP")
        for r in sockets:
            check(json.loads(r.recv_data())["id"] == rid, "WebSocket kept over SIGHUP")
        with open(ENV.keys_path, "w") as f:
            f.write("k3 too-short\n")
        before = {log: _log_count(log, "old keys stay in force") for _, log in procs}
        _signal_and_wait(procs, signal.SIGHUP, "old keys stay in force", before)
        for x in sse_t + ws_t:
            st, _, body = attempt(x, qs([ch]), {"Authorization": f"Bearer {k2_tok}"})
            check(st == ok_status(x), f"{x.name}: k2 after a broken key file: {st} {body!r}")
        for p, log in procs:
            check(p.poll() is None, f"{log}: process exited after SIGHUP")
            with open(os.path.join(ENV.dir, log), "rb") as f:
                check(b"too-short" not in f.read(), f"{log}: a secret was logged")
    finally:
        for s in streams:
            s.close()
        for r in sockets:
            r.close()
        with open(ENV.keys_path, "w") as f:
            f.write(KEYS_TEXT)
        before = {log: _log_count(log, "key file re-read") for _, log in procs}
        _signal_and_wait(procs, signal.SIGHUP, "key file re-read", before)
    return "2 SSE streams and 3 WebSockets kept"


def auth_publish(t):
    """WS publish needs a covering publish pattern; litepush.* events are
    reserved; a public channel is open for reading only."""
    T = tokens()
    c = "chat." + os.urandom(3).hex()
    tok = pyjwt([(claims(publish=["chat.*"]), K_DEFAULT, "HS256", None)])[0]
    r = RawWS(t.port, t.target(qs([c, "pub.p"], tok))).open()
    try:
        def send(obj):
            r.send_frame(OP_TEXT, json.dumps(obj))
            return json.loads(r.recv_data())
        got = send({"channel": c, "event": "e", "data": "allowed"})
        check(got.get("channel") == c and got.get("data") == "allowed", f"allowed publish: {got}")
        other = "news." + os.urandom(3).hex()
        for obj, why in (({"channel": other, "data": "x"}, "not covered"),
                         ({"channel": "pub.p", "data": "x"}, "public is read-only"),
                         ({"channel": c, "event": "litepush.reset", "data": "x"}, "reserved"),
                         ({"channel": c, "event": "litepush.expired", "data": "x"}, "reserved")):
            got = send(obj)
            check(set(got) == {"error"}, f"{why}: expected an error, got {got}")
            got = send(dict(obj, ref=why))
            check(list(got) == ["error", "ref"] and got["ref"] == why,
                  f"{why}, with a ref: expected {{\"error\":...,\"ref\":{why!r}}}, got {got}")
        check(ENV.db.ids(other) == [] and len(ENV.db.ids(c)) == 1 and ENV.db.ids("pub.p") == [],
              "refused publishes must insert nothing")
    finally:
        r.close()
    # Without publish rights (a subscribe-only token).
    r = RawWS(t.port, t.target(qs([c], T["good"]))).open()
    try:
        r.send_frame(OP_TEXT, json.dumps({"channel": c, "data": "no rights"}))
        got = json.loads(r.recv_data())
        check(set(got) == {"error"} and "publish" in got["error"], f"no publish rights: {got}")
        r.send_frame(OP_TEXT, json.dumps({"channel": c, "data": "no rights", "ref": 5}))
        got = json.loads(r.recv_data())
        check(list(got) == ["error", "ref"] and got["ref"] == 5, f"no publish rights, with a ref: {got}")
    finally:
        r.close()


def auth_reserved_without_keys(_):
    """litepush.* event names are refused in every mode: also by the helper
    that runs without --auth-keys."""
    c = "resv." + os.urandom(3).hex()
    r = RawWS(ENV.wsport, f"/ws?channel={c}").open()
    try:
        r.send_frame(OP_TEXT, json.dumps({"channel": c, "event": "litepush.reset", "data": "x"}))
        got = json.loads(r.recv_data())
        check(set(got) == {"error"} and "reserved" in got["error"], f"reserved event: {got}")
        r.send_frame(OP_TEXT, json.dumps({"channel": c, "event": "litepush.reset", "data": "x",
                                          "ref": "r"}))
        got = json.loads(r.recv_data())
        check(list(got) == ["error", "ref"] and got["ref"] == "r" and "reserved" in got["error"],
              f"reserved event, with a ref: {got}")
        r.send_frame(OP_TEXT, json.dumps({"channel": c, "event": "litepushx", "data": "y"}))
        got = json.loads(r.recv_data())
        check(got.get("event") == "litepushx", f"an ordinary event name: {got}")
    finally:
        r.close()


def _head(port, path, method, headers):
    s = Stream(port, path, headers=headers, method=method)
    try:
        s.wait(lambda: s.status is not None, 5, "response head")
        return s.status, s.headers
    finally:
        s.close()


def auth_cors(t):
    """--cors-origin: preflight 204 without a token; the listed origin gets
    itself back with credentials and Vary: Origin, on 200 and on 401/403;
    another origin gets no Access-Control-Allow-Origin."""
    T = tokens()
    problems = []
    st, hd = _head(t.port, t.target(qs(["news.a"])), "OPTIONS",
                   {"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization,last-event-id"})
    allow_h = hd.get("access-control-allow-headers", "").lower()
    if (st != 204 or hd.get("access-control-allow-origin") != CORS_ORIGIN or
            hd.get("access-control-allow-credentials") != "true" or
            "GET" not in hd.get("access-control-allow-methods", "") or
            "authorization" not in allow_h or "last-event-id" not in allow_h):
        problems.append(f"preflight: {st} {hd}")
    for why, hdr, want in (("200", {"Authorization": f"Bearer {T['good']}"}, 200),
                           ("401", {}, 401),
                           ("403", {"Authorization": f"Bearer {T['no_rights']}"}, 403)):
        st, hd, body = attempt(t, qs(["news.a"]), {"Origin": CORS_ORIGIN, **hdr})
        if (st != want or hd.get("access-control-allow-origin") != CORS_ORIGIN or
                hd.get("access-control-allow-credentials") != "true" or
                "origin" not in hd.get("vary", "").lower()):
            problems.append(f"{why} with a listed Origin: {st} {hd}")
    st, hd, body = attempt(t, qs(["pub.c"]), {"Origin": "https://evil.example"})
    if st != 200 or "access-control-allow-origin" in hd or "origin" not in hd.get("vary", "").lower():
        problems.append(f"unlisted Origin: {st} {hd}")
    st, hd = _head(t.port, t.target(qs(["news.a"])), "OPTIONS", {"Origin": "https://evil.example"})
    if "access-control-allow-origin" in hd:
        problems.append(f"preflight from an unlisted Origin: {st} {hd}")
    check(not problems, "; ".join(problems))


def auth_ws_origin(t):
    """litepush-ws --origin: another browser origin gets 403 before any
    upgrade, even with a valid cookie token (cross-site WebSocket
    hijacking); the listed origin and a client without Origin pass."""
    T = tokens()
    ch = qs(["news.a"])
    ck = {"Cookie": f"litepush_token={T['good']}"}
    problems = []
    for origin, want in (("https://evil.example", 403), ("null", 403), (WS_ORIGIN, 101),
                         (None, 101)):
        st, hd, body = attempt(t, ch, {"Origin": origin, **ck})
        if st != want:
            problems.append(f"Origin {origin}: expected {want}, got {st} {body!r}")
    check(not problems, "; ".join(problems))


def auth_log_lines(_):
    """Refusals are logged with the reason and the client address, never the
    token. Runs after the refusal table."""
    T = tokens()
    problems = []
    for log in ("responder-auth.log", "responder-ws-auth.log"):
        with open(os.path.join(ENV.dir, log), "rb") as f:
            text = f.read().decode("utf-8", "replace")
        lines = [ln for ln in text.splitlines() if "refused" in ln]
        if not any(re.search(r"refused 401 \(token expired from header\) client 127\.0\.0\.1", ln)
                   for ln in lines):
            problems.append(f"{log}: no 'refused 401 (token expired from header) client "
                            f"127.0.0.1' line in {short(lines[-5:])}")
        if not any("refused 403" in ln and "sub tester" in ln and "channels" in ln
                   for ln in lines):
            problems.append(f"{log}: no 403 line with sub and channels")
        for name, tok in T.items():
            for part in tok.split("."):
                if len(part) > 12 and part in text:
                    problems.append(f"{log}: part of the {name} token was logged")
                    break
    # ... and counted: litepush_connections_refused_total{reason="auth"}.
    for port, path in ((ENV.wsport_auth, "/ws/metrics"), (ENV.lport, "/auth/events/metrics")):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                st, body = resp.status, resp.read().decode("utf-8", "replace")
        except OSError as e:
            st, body = str(e), ""
        m = re.search(r'^litepush_connections_refused_total\{reason="auth"\} (\d+)', body, re.M)
        if st != 200 or m is None or int(m.group(1)) == 0:
            problems.append(f"{path}: no auth refusals counted ({st}, "
                            f"{short([ln for ln in body.splitlines() if 'refused' in ln])})")
    check(not problems, "; ".join(problems))


def auth_cli(_):
    """litepush-token and the flags: tokens PyJWT accepts, refusals of bad
    flags, an unreadable or bad key file, '*' with keys."""
    tok = lp_token("--sub", "op", "--subscribe", "a", "--subscribe", "b:*", "--publish", "c",
                   "--ttl", "120")
    prog = ("import jwt, sys, json\n"
            "t = sys.argv[1]\n"
            "print(json.dumps([jwt.get_unverified_header(t),"
            " jwt.decode(t, sys.argv[2], algorithms=['HS256'])]))\n")
    r = subprocess.run([DEBIAN_PYTHON, "-c", prog, tok, K_DEFAULT], capture_output=True, text=True,
                       timeout=10)
    check(r.returncode == 0, f"PyJWT does not accept litepush-token's token: {r.stderr[-300:]}")
    head, body = json.loads(r.stdout)
    check(head.get("alg") == "HS256" and head.get("kid") == "default", f"header {head}")
    check(body["sub"] == "op" and body["litepush"] == {"subscribe": ["a", "b:*"], "publish": ["c"]}
          and 110 <= body["exp"] - int(time.time()) <= 121, f"claims {body}")
    bad = os.path.join(ENV.dir, "bad-keys")
    with open(bad, "w") as f:
        f.write("k1 0123456789\n")
    for args, why in ((["--key-file", bad], "31-byte secret"),
                      (["--key-file", "/nonexistent/keys"], "missing key file"),
                      (["--key-file", ENV.keys_path, "--kid", "nope"], "unknown kid"),
                      (["--key-file", ENV.keys_path, "--subscribe", ""], "empty pattern"),
                      (["--key-file", ENV.keys_path, "--ttl", "0"], "ttl 0"),
                      ([], "no key file")):
        r = subprocess.run([TOKEN_BIN, *args], capture_output=True, text=True, timeout=10)
        check(r.returncode != 0 and r.stderr.strip() and not r.stdout.strip(),
              f"litepush-token {why}: expected an error, got {r.returncode} {r.stdout!r}")
        check("0123456789" not in r.stderr, f"litepush-token {why}: secret in the message")
    db = os.path.join(ENV.dir, "cli-auth.db")
    for prog_, args, why in (
            (BIN, ["--auth-keys", bad], "bad key file"),
            (BIN, ["--auth-keys", "/nonexistent/keys"], "missing key file"),
            (BIN, ["--auth-keys", ENV.keys_path, "--cors-origin", "*"], "'*' with keys"),
            (BIN, ["--public", ""], "empty --public"),
            (WS_BIN, ["--auth-keys", bad], "bad key file"),
            (WS_BIN, ["--public", "a\x01"], "bad --public")):
        r = subprocess.run([prog_, "--db", db, "--listen", f"127.0.0.1:{free_port()}", *args],
                           capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        check(r.returncode != 0 and r.stderr.strip(),
              f"{os.path.basename(prog_)} {why}: expected a clear error, got {r.returncode}")
    r = subprocess.run([TOKEN_BIN, "--help"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and "--key-file" in r.stdout, "litepush-token --help")


def _shipped(name):
    """A copy of apache-conf/NAME pointed at the auth processes' ports."""
    with open(os.path.join(ROOT, "apache-conf", name)) as f:
        text = f.read()
    text = text.replace("127.0.0.1:9000", f"127.0.0.1:{ENV.fport_auth}")
    text = text.replace("127.0.0.1:9001", f"127.0.0.1:{ENV.wsport_auth}")
    text = re.sub(r'("port"\s*=>\s*)9000\b', rf"\g<1>{ENV.fport_auth}", text)
    text = re.sub(r'("port"\s*=>\s*)9001\b', rf"\g<1>{ENV.wsport_auth}", text)
    return ENV.write("shipped-" + name, text)


def _log_has(path, needle, timeout):
    def has():
        try:
            with open(path, "rb") as f:
                return needle.encode() in f.read()
        except OSError:
            return False
    try:
        wait_until(has, timeout, f"{needle!r} in {os.path.basename(path)}", interval=0.1)
    except Fail:
        return False
    return True


def _check_logs(logs, marker, T):
    """marker: a path logged once the requests ended; no token anywhere."""
    problems = []
    check(any(_log_has(p, marker, 8) for p in logs), f"no {marker!r} in the access logs {logs}")
    for p in logs:
        try:
            with open(p, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        for name, tok in T.items():
            if any(len(part) > 12 and part in text for part in tok.split(".")[1:]):
                problems.append(f"{os.path.basename(p)} holds the {name} token")
                break
    return problems


def conf_apache_shipped(_):
    """apache-conf/litepush-apache.conf as shipped (ports changed): the
    Authorization header reaches the responder (CGIPassAuth; without it, 401),
    ?token= works for SSE and WebSocket, and no token reaches an access log
    (the site's own CustomLog with env=!litepush_token, as the file says)."""
    T = tokens()
    port = free_port()
    d = os.path.join(ENV.dir, "shipped-apache")
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    conf = _shipped("litepush-apache.conf")
    mods = ["mpm_event", "authz_core", "authz_host", "proxy", "proxy_fcgi", "proxy_wstunnel",
            "proxy_http", "env", "setenvif"]
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods)
    wrap = ENV.write("shipped-apache-main.conf", f"""ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{d}/apache.pid"
DefaultRuntimeDir "{d}/run"
ErrorLog "{d}/error.log"
User www-data
Group www-data
Define APACHE_LOG_DIR "{d}"
{loads}
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog "{d}/access.log" combined env=!litepush_token
Include "{conf}"
# The control: the same backend without CGIPassAuth.
ProxyPass /nopass/events fcgi://127.0.0.1:{ENV.fport_auth}/ flushpackets=on timeout=30 retry=0
""")
    os.chmod(d, 0o777)
    log = open(os.path.join(d, "stderr.log"), "ab")
    env = dict(os.environ, APACHE_RUN_DIR=os.path.join(d, "run"),
               APACHE_LOCK_DIR=os.path.join(d, "run"), APACHE_PID_FILE=os.path.join(d, "apache.pid"))
    p = PROCS.start(["/usr/sbin/apache2", "-f", wrap, "-DFOREGROUND"], stdout=log, stderr=log,
                    env=env)
    log.close()
    try:
        wait_until(lambda: tcp_listening(port) or p.poll() is not None, 10, "Apache to listen")
        check(p.poll() is None, f"Apache with the shipped config exited: {ENV.tail('shipped')}")
        sse = AuthTarget("shipped-apache", "sse", port, "/events")
        ws = AuthTarget("shipped-apache-ws", "ws", port, "/ws")
        nopass = AuthTarget("shipped-apache-nopass", "sse", port, "/nopass/events")
        problems = []
        for t, q, hdr, want in (
                (sse, qs(["news.a"]), {"Authorization": f"Bearer {T['good']}"}, 200),
                (nopass, qs(["news.a"]), {"Authorization": f"Bearer {T['good']}"}, 401),
                (sse, qs(["news.a"]), {"Authorization": f"Bearer {T['expired']}"}, 401),
                (sse, qs(["news.a"], T["good"]), None, 200),
                (sse, qs(["news.a"]), {"Cookie": f"litepush_token={T['good']}"}, 200),
                (ws, qs(["news.a"]), {"Authorization": f"Bearer {T['good']}"}, 101),
                (ws, qs(["news.a"], T["good"]), None, 101),
                (ws, qs(["news.a"], T["expired"]), None, 401)):
            st, hd, body = attempt(t, q, hdr)
            if st != want:
                problems.append(f"{t.path} {list(hdr or {})} token in query {'token=' in q}: "
                                f"expected {want}, got {st} {body.strip()!r}")
        problems += _check_logs([os.path.join(d, "access.log"),
                                 os.path.join(d, "litepush-access.log")],
                                "GET /events HTTP/1.1", T)
        if not _log_has(os.path.join(d, "access.log"), "/events?channel=news.a HTTP", 8):
            problems.append("a request without a token should be in the site's log as usual")
        check(not problems, "; ".join(problems))
    finally:
        Procs.stop(p)


def conf_lighttpd_shipped(_):
    """apache-conf/litepush-lighttpd.conf as shipped (ports changed): the
    Authorization header reaches the responder and the helper, and the
    access log holds the path without the token."""
    T = tokens()
    port = free_port()
    d = os.path.join(ENV.dir, "shipped-lighttpd")
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    conf = _shipped("litepush-lighttpd.conf")
    wrap = ENV.write("shipped-lighttpd-main.conf", f"""server.document-root = "{d}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
server.modules = ( "mod_accesslog" )
accesslog.filename = "{d}/access.log"
include "{conf}"
""")
    log = open(os.path.join(d, "stderr.log"), "ab")
    p = PROCS.start(["lighttpd", "-D", "-f", wrap], stdout=log, stderr=log)
    log.close()
    try:
        wait_until(lambda: tcp_listening(port) or p.poll() is not None, 10, "lighttpd to listen")
        check(p.poll() is None, "lighttpd with the shipped config exited")
        sse = AuthTarget("shipped-lighttpd", "sse", port, "/events")
        ws = AuthTarget("shipped-lighttpd-ws", "ws", port, "/ws")
        problems = []
        for t, q, hdr, want in ((sse, qs(["news.a"]), {"Authorization": f"Bearer {T['good']}"}, 200),
                                (sse, qs(["news.a"], T["good"]), None, 200),
                                (sse, qs(["news.a"]), None, 401),
                                (ws, qs(["news.a"]), {"Authorization": f"Bearer {T['good']}"}, 101),
                                (ws, qs(["news.a"], T["good"]), None, 101)):
            st, hd, body = attempt(t, q, hdr)
            if st != want:
                problems.append(f"{t.path} {list(hdr or {})}: expected {want}, got {st} {body!r}")
        problems += _check_logs([os.path.join(d, "access.log")], "GET /events HTTP/1.1", T)
        check(not problems, "; ".join(problems))
    finally:
        Procs.stop(p)


# name, function, timeout (s), scope
AUTH_CASES = [
    ("auth.cli", auth_cli, 60, "cli"),
    ("auth.refusals", auth_refusals, 60, "auth-all"),
    ("auth.stream_rows", auth_stream_rows, 15, "auth-all"),
    ("auth.log_lines", auth_log_lines, 10, "cli"),
    ("auth.expiry_resume", auth_expiry, 30, "auth-all"),
    ("auth.sighup_rotation", auth_rotation, 60, "cli"),
    ("auth.publish_rights", auth_publish, 20, "auth-ws"),
    ("auth.reserved_events", auth_reserved_without_keys, 10, "cli"),
    ("auth.cors", auth_cors, 20, "auth-sse"),
    ("auth.ws_origin", auth_ws_origin, 20, "auth-ws"),
    ("conf.apache_authorization_and_logs", conf_apache_shipped, 40, "cli"),
    ("conf.lighttpd_authorization_and_logs", conf_lighttpd_shipped, 40, "cli"),
]
