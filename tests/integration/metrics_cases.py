"""GET .../metrics of both programs: the Prometheus text exposition, parsed
by Debian's python3-prometheus-client, and counters that move with what the
clients do (deltas between two scrapes, since earlier cases moved them too).

The parser runs in /usr/bin/python3 (Debian's, where tests/deps.sh installs
the package) as a child process: the python3 running the suite may be
another build without Debian's modules.

run.py sets ENV and appends METRICS_CASES to its case list: "metrics.sse"
runs through Apache and lighttpd, "metrics.sse_direct" over bare FastCGI,
"metrics.ws" on ws-direct, ws-apache and ws-lighttpd.
"""
import json
import subprocess

from harness import NodeWS, Stream, check, fcgi_request, http_once, short, wait_until
from ws_cases import _refusal

ENV = None          # set by run.py
SYSTEM_PYTHON = "/usr/bin/python3"
CONTENT_TYPE = "text/plain; version=0.0.4"

PARSER = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [[s.name, s.labels, s.value] for s in f.samples]})
print(json.dumps(out))
"""

OPEN = "litepush_connections_open"
ACCEPTED = "litepush_connections_accepted_total"
BAD_REQUEST = 'litepush_connections_refused_total{reason="bad_request"}'
DELIVERIES = "litepush_deliveries_total"
BYTES = "litepush_bytes_sent_total"
ROWS = "litepush_rows_read_total"
REPLAYS = "litepush_replays_total"
RESET_AHEAD = 'litepush_resets_total{reason="ahead-of-log"}'
LAST_ID = "litepush_last_id"
PUBLISHED = "litepush_published_total"
PUBLISH_ERRORS = "litepush_publish_errors_total"

# Series every page has, and those only litepush-ws has.
COMMON = [OPEN, ACCEPTED, BAD_REQUEST, 'litepush_connections_refused_total{reason="full"}',
          'litepush_connections_refused_total{reason="auth"}',
          'litepush_connections_dropped_total{reason="slow"}', DELIVERIES, BYTES, ROWS, REPLAYS,
          RESET_AHEAD, 'litepush_resets_total{reason="history-pruned"}',
          "litepush_watcher_lag_seconds", LAST_ID]
WS_ONLY = [PUBLISHED, PUBLISH_ERRORS, 'litepush_connections_dropped_total{reason="unresponsive"}']


def parse(text, is_ws):
    """The page through prometheus_client: {series: value}, after checking
    the families (litepush_ prefix, HELP, TYPE, counters in _total, labels
    only `reason`: never one series per channel)."""
    r = subprocess.run([SYSTEM_PYTHON, "-c", PARSER], input=text, capture_output=True, text=True,
                       timeout=20)
    check(r.returncode == 0, f"prometheus_client cannot parse the page: "
                             f"{r.stderr.strip()[-400:]}\npage: {short(text, 500)}")
    values = {}
    for f in json.loads(r.stdout):
        name = f["name"]
        check(name.startswith("litepush_"), f"family {name}: no litepush_ prefix")
        check(f["help"], f"family {name}: no HELP text")
        check(f["type"] in ("counter", "gauge"), f"family {name}: TYPE {f['type']}")
        for sname, labels, value in f["samples"]:
            check(f["type"] != "counter" or sname.endswith("_total"),
                  f"counter sample {sname} does not end in _total")
            check(set(labels) <= {"reason"}, f"{sname}: unexpected labels {labels}")
            key = sname + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                           if labels else "")
            values[key] = value
    want = COMMON + (WS_ONLY if is_ws else [])
    missing = [k for k in want if k not in values]
    check(not missing, f"series missing from the page: {missing}")
    if not is_ws:
        extra = [k for k in WS_ONLY if k in values]
        check(not extra, f"WebSocket-only series on the SSE page: {extra}")
    check(len(values) <= 30, f"{len(values)} series: expected a small fixed set")
    return values


def scrape_http(port, path, is_ws):
    s = Stream(port, path, headers={"Connection": "close"})
    try:
        s.wait(lambda: s.status is not None, 5, f"GET {path}: response head")
        check(s.status == 200, f"GET {path}: expected 200, got {s.status} {short(s.body)}")
        ct = s.headers.get("content-type", "")
        check(ct.startswith(CONTENT_TYPE), f"GET {path}: Content-Type {ct!r}")
        s.wait(lambda: s.eof, 5, f"GET {path}: end of the page")
        return parse(s.body.decode("utf-8"), is_ws)
    finally:
        s.close()


def fcgi_address(responder):
    listen = responder.listen
    return listen if listen.startswith("/") else ("127.0.0.1", int(listen.rsplit(":", 1)[1]))


def fcgi_params(uri, method="GET"):
    path, _, query = uri.partition("?")
    return {"REQUEST_METHOD": method, "REQUEST_URI": uri, "QUERY_STRING": query,
            "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}


def scrape_fcgi(address, uri="/events/metrics"):
    out = fcgi_request(address, fcgi_params(uri)).decode("utf-8")
    head, _, body = out.partition("\r\n\r\n")
    check(head.startswith("Status: 200"), f"FastCGI {uri}: {short(out)}")
    check(f"Content-Type: {CONTENT_TYPE}" in head, f"FastCGI {uri}: head {head!r}")
    return parse(body, False)


def wait_metrics(scrape, pred, what, timeout=5.0):
    """Scrapes until pred(values) holds; returns those values."""
    box = {}

    def ok():
        box["m"] = scrape()
        return pred(box["m"])
    try:
        wait_until(ok, timeout, what, interval=0.1)
    except Exception as e:
        raise type(e)(f"{e}; last scrape {short(box.get('m'), 900)}")
    return box["m"]


def idle(scrape):
    """A scrape once nothing is open: streams of earlier cases may still be
    closing (a proxy notices a client that left only at its next write,
    the heartbeat), and the open gauge is then checked as it is."""
    return wait_metrics(scrape, lambda m: m[OPEN] == 0, "the open gauge back at 0 from earlier "
                        "cases", timeout=15)


def d(m, m0, key):
    return m[key] - m0[key]


# ------------------------------------------------------------ cases
def metrics_sse(t):
    """Through the web server: a stream opened moves the open gauge and
    accepted by 1; a row moves deliveries, bytes, rows read and the last id;
    a bad lastEventId is refused bad_request; a resume counts a replay; an
    id ahead of the log a reset (ahead-of-log)."""
    def scrape():
        return scrape_http(t.port, t.path + "/metrics", False)
    m0 = idle(scrape)
    ch = t.ch("met")
    streams = [t.stream(f"channel={ch}").open()]
    try:
        m1 = wait_metrics(scrape, lambda m: m[OPEN] == 1 and d(m, m0, ACCEPTED) == 1,
                          "open 1 and accepted +1 after one stream")
        rid = ENV.db.insert(ch, "counted")
        streams[0].wait_events(1)
        m2 = wait_metrics(scrape, lambda m: d(m, m1, DELIVERIES) >= 1 and d(m, m1, BYTES) > 0 and
                          d(m, m1, ROWS) >= 1 and m[LAST_ID] >= rid,
                          "deliveries, bytes sent, rows read and last id after a row")
        st, _, _ = http_once(t.port, t.url(f"channel={ch}&lastEventId=abc"))
        check(st == 400, f"lastEventId=abc: expected 400, got {st}")
        streams.append(t.stream(f"channel={ch}", headers={"Last-Event-ID": str(rid - 1)}).open())
        expect = streams[-1].wait_events(1)[0]
        check(expect["id"] == str(rid), f"resume: expected row {rid}, got {expect['fields']}")
        ahead = ENV.db.max_issued() + 1000
        streams.append(t.stream(f"channel={ch}", headers={"Last-Event-ID": str(ahead)}).open())
        ev = streams[-1].wait_events(1)[0]
        check(ev["event"] == "litepush.reset", f"resume from {ahead}: expected litepush.reset, "
                                               f"got {ev['fields']}")
        m3 = wait_metrics(scrape, lambda m: d(m, m2, BAD_REQUEST) == 1 and d(m, m2, REPLAYS) == 2
                          and d(m, m2, RESET_AHEAD) == 1 and m[OPEN] == 3,
                          "refused bad_request +1, replays +2, resets ahead-of-log +1, open 3")
    finally:
        for s in streams:
            s.close()
    wait_metrics(scrape, lambda m: m[OPEN] == 0, "open back at 0 after the streams closed",
                 timeout=15)
    return (f"open {m1[OPEN]:g}, accepted {m3[ACCEPTED]:g}, deliveries {m3[DELIVERIES]:g}, "
            f"bytes {m3[BYTES]:g}, bad_request {m3[BAD_REQUEST]:g}, replays {m3[REPLAYS]:g}")


def metrics_sse_direct(_):
    """Bare FastCGI to the responder: /events/metrics parses; a stream
    counts as accepted, a POST as refused bad_request (405); /stats keeps
    its plain-text counters, fed from the same numbers."""
    addr = fcgi_address(ENV.main)

    def scrape():
        return scrape_fcgi(addr)
    m0 = scrape()
    out = fcgi_request(addr, fcgi_params("/events?channel=direct.met"), until=b"retry:")
    check(b"retry:" in out, f"stream did not open: {short(out)}")
    out = fcgi_request(addr, fcgi_params("/events", "POST"))
    check(out.startswith(b"Status: 405"), f"POST: expected 405, got {short(out)}")
    m1 = wait_metrics(scrape, lambda m: d(m, m0, ACCEPTED) == 1 and d(m, m0, BAD_REQUEST) == 1,
                      "accepted +1, refused bad_request +1")
    stats = fcgi_request(addr, fcgi_params("/events/stats")).decode()
    got = dict(line.split(" ", 1) for line in stats.partition("\r\n\r\n")[2].splitlines())
    check(int(got.get("streams_total", -1)) >= m1[ACCEPTED] and
          int(got.get("events_sent", -1)) >= m1[DELIVERIES],
          f"/stats disagrees with /metrics: {got} vs {short(m1, 600)}")
    return f"accepted {m1[ACCEPTED]:g}, bad_request {m1[BAD_REQUEST]:g}"


def metrics_ws(t):
    """litepush-ws: a connection moves open and accepted by 1; a publish
    moves published (and deliveries, bytes, rows read), an invalid one
    publish errors (a bad ping does not); a bad lastEventId is refused bad_request; a resume
    counts a replay and an id ahead of the log a reset."""
    def scrape():
        return scrape_http(t.port, t.path + "/metrics", True)
    m0 = idle(scrape)
    c = t.ch("met")
    clients = [NodeWS(t.url(f"channel={c}"))]
    try:
        clients[0].open()
        m1 = wait_metrics(scrape, lambda m: m[OPEN] == 1 and d(m, m0, ACCEPTED) == 1,
                          "open 1 and accepted +1 after one connection")
        clients[0].publish({"channel": c, "data": "counted"})
        clients[0].wait_messages(1)
        rid = ENV.db.ids(c)[-1]
        clients[0].publish({"channel": "", "data": "x"})
        got = clients[0].wait_messages(2)[1]
        check(isinstance(got, dict) and "error" in got, f"invalid publish: got {short(got)}")
        clients[0].publish({"ping": None})    # an error, but not a publish error
        got = clients[0].wait_messages(3)[2]
        check(isinstance(got, dict) and "ping" in got.get("error", ""), f"bad ping: got {short(got)}")
        m2 = wait_metrics(scrape, lambda m: d(m, m1, PUBLISHED) == 1 and
                          d(m, m1, PUBLISH_ERRORS) == 1 and d(m, m1, DELIVERIES) >= 1 and
                          d(m, m1, BYTES) > 0 and d(m, m1, ROWS) >= 1 and m[LAST_ID] >= rid,
                          "published +1, publish errors +1, deliveries, bytes, rows read")
        st, _, body = _refusal(t.port, f"{t.path}?channel={c}&lastEventId=abc")
        check(st == 400, f"lastEventId=abc: expected 400, got {st} {short(body)}")
        clients.append(NodeWS(t.url(f"channel={c}&lastEventId={rid - 1}")))
        clients[-1].open()
        clients[-1].wait_messages(1)
        ahead = ENV.db.max_issued() + 1000
        clients.append(NodeWS(t.url(f"channel={c}&lastEventId={ahead}")))
        clients[-1].open()
        first = clients[-1].wait_messages(1)[0]
        check(first.get("event") == "litepush.reset", f"expected litepush.reset, got {short(first)}")
        m3 = wait_metrics(scrape, lambda m: d(m, m2, BAD_REQUEST) == 1 and d(m, m2, REPLAYS) == 2
                          and d(m, m2, RESET_AHEAD) == 1 and m[OPEN] == 3,
                          "refused bad_request +1, replays +2, resets ahead-of-log +1, open 3")
    finally:
        for n in clients:
            n.quit()
    wait_metrics(scrape, lambda m: m[OPEN] == 0, "open back at 0 after the clients left")
    return (f"published {m3[PUBLISHED]:g}, errors {m3[PUBLISH_ERRORS]:g}, "
            f"deliveries {m3[DELIVERIES]:g}, replays {m3[REPLAYS]:g}")


# name, function, timeout (s), scope (as in run.py)
METRICS_CASES = [
    ("metrics.sse", metrics_sse, 40, "main"),
    ("metrics.sse_direct", metrics_sse_direct, 20, "cli"),
    ("metrics.ws", metrics_ws, 50, "ws"),
]
