#!/usr/bin/env bash
# report.sh RESULTS.tsv ROUNDS QUICK ELAPSED_S: the medians table of a bench run.
# RESULTS.tsv lines: round <TAB> variant <TAB> scenario.step.key <TAB> value
# (bench/run.sh writes them; bench/last-results.tsv keeps the last run's).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: report.sh RESULTS.tsv [ROUNDS QUICK ELAPSED_S]" >&2; exit 2; }
awk -F'\t' -v rounds="${2:-?}" -v quick="${3:-0}" -v elapsed="${4:-?}" '
function num(x) { return x == "" ? "" : x + 0 }
function get(r, v, k) { return ((r SUBSEP v SUBSEP k) in val) ? val[r, v, k] : "" }
function put(r, v, k, x) { if (x != "") { val[r, v, k] = x; keys[v, k] = 1 } }
# median over rounds of variant v, key k ("" when no round has it)
function med(v, k,    r, n, a, i, j, t) {
    n = 0
    for (r = 1; r <= maxr; r++) { t = get(r, v, k); if (t != "") a[++n] = t + 0 }
    if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function total(v, k,    r, s, t, seen) {
    s = 0; seen = 0
    for (r = 1; r <= maxr; r++) { t = get(r, v, k); if (t != "") { s += t; seen = 1 } }
    return seen ? s : ""
}
function fmt(x) {
    if (x == "") return "-"
    if (x >= 10000) return sprintf("%.0f", x)
    if (x >= 100) return sprintf("%.0f", x)
    if (x >= 10) return sprintf("%.1f", x)
    return sprintf("%.2f", x)
}
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function row(label, k, cols, ncols, base,    i, line, x, b) {
    line = sprintf("| %-44s", label)
    for (i = 1; i <= ncols; i++) { x = med(cols[i], k); line = line sprintf(" | %12s", fmt(x)) }
    b = med(base, k)
    for (i = 1; i <= ncols; i++) if (cols[i] != base) line = line sprintf(" | %9s", ratio(med(cols[i], k), b))
    print line " |"
}
function sumrow(label, k, cols, ncols,    i, line, x) {
    line = sprintf("| %-44s", label)
    for (i = 1; i <= ncols; i++) { x = total(cols[i], k); line = line sprintf(" | %12s", x == "" ? "-" : sprintf("%d", x)) }
    for (i = 1; i < ncols; i++) line = line sprintf(" | %9s", "")
    print line " |"
}
function header(title, cols, ncols, names,    i, line, sep) {
    print ""
    print "### " title
    print ""
    line = sprintf("| %-44s", "median of " rounds " round(s)"); sep = "|" dashes(46)
    for (i = 1; i <= ncols; i++) { line = line sprintf(" | %12s", names[i]); sep = sep "|" dashes(14) }
    for (i = 1; i < ncols; i++) { line = line sprintf(" | %9s", "vs nchan"); sep = sep "|" dashes(11) }
    print line " |"
    print sep "|"
}
function dashes(n,    s) { s = ""; while (n-- > 0) s = s "-"; return s }
function table(title, c1, c2, c3, n1, n2, n3, names, cols) {
    cols[1] = c1; cols[2] = c2; cols[3] = c3; names[1] = n1; names[2] = n2; names[3] = n3
    header(title, cols, 3, names)
    row("connect " nH " subs, all (s)", "hold.connect.connect_s", cols, 3, c3)
    row("idle memory/sub, litepush only (B)", "d.mem_lp", cols, 3, c3)
    row("idle memory/sub, litepush + web server (B)", "d.mem_all", cols, 3, c3)
    row("idle memory/sub, PSS, lp + web (B)", "d.pss_all", cols, 3, c3)
    row("1 msg -> " nH " subs: p50 (ms)", "hold.lat.p50_ms", cols, 3, c3)
    row("1 msg -> " nH " subs: p99 (ms)", "hold.lat.p99_ms", cols, 3, c3)
    row("1 msg -> " nH " subs: CPU/delivery (us)", "d.lat_cpu_per_delivery_us", cols, 3, c3)
    row("1 msg -> " nF " subs: p50 (ms)", "fan.lat.p50_ms", cols, 3, c3)
    row("1 msg -> " nF " subs: p99 (ms)", "fan.lat.p99_ms", cols, 3, c3)
    row(nS " subs, 10 msg/s: p50 (ms)", "slow.rate.p50_ms", cols, 3, c3)
    row(nS " subs, 10 msg/s: p99 (ms)", "slow.rate.p99_ms", cols, 3, c3)
    row("flood, " nF " subs, 1 channel: deliveries/s", "fan.flood.dps", cols, 3, c3)
    row("flood: server CPU per delivery (us)", "d.cpu_per_delivery_us", cols, 3, c3)
    row("flood: p99 (ms, " fW " msgs in flight)", "fan.flood.p99_ms", cols, 3, c3)
    row(nM " subs/" cM " ch, " rM " msg/s: p50 (ms)", "many.rate.p50_ms", cols, 3, c3)
    row(nM " subs/" cM " ch, " rM " msg/s: p99 (ms)", "many.rate.p99_ms", cols, 3, c3)
    row(nM " subs/" cM " ch: deliveries/s", "many.rate.dps", cols, 3, c3)
    sumrow("lost, all rounds and phases (must be 0)", "d.lost", cols, 3)
    sumrow("duplicated (must be 0)", "d.dup", cols, 3)
    sumrow("subscribers not connected or cut", "d.failed", cols, 3)
}
function verdict(ok, text) { printf "  [%s] %s\n", ok ? "ok  " : "MISS", text; if (!ok) misses++ }
{
    r = $1 + 0; if (r > maxr) maxr = r
    val[r, $2, $3] = $4; keys[$2, $3] = 1; vars[$2] = 1
    if ($3 == "hold.connect.subs") nH = $4
    if ($3 == "fan.connect.subs") nF = $4
    if ($3 == "slow.connect.subs") nS = $4
    if ($3 == "many.connect.subs") nM = $4
    if ($3 == "many.rate.channels") cM = $4
}
END {
    fW = 32; rM = 1000
    for (r = 1; r <= maxr; r++) for (v in vars) {
        lp = get(r, v, "hold.idle.mem_lp_per_sub_b"); web = get(r, v, "hold.idle.mem_web_per_sub_b")
        # nchan has no litepush process: its "own" memory is nginx
        if (lp == "" && web != "") lp = web
        put(r, v, "d.mem_lp", lp)
        if (lp != "" || web != "") put(r, v, "d.mem_all", (get(r, v, "hold.idle.mem_lp_per_sub_b") + 0) + (web + 0))
        if (get(r, v, "hold.idle.pss_lp_per_sub_b") != "" || get(r, v, "hold.idle.pss_web_per_sub_b") != "")
            put(r, v, "d.pss_all", get(r, v, "hold.idle.pss_lp_per_sub_b") + get(r, v, "hold.idle.pss_web_per_sub_b"))
        d = get(r, v, "hold.lat.delivered")
        if (d != "" && d > 0)
            put(r, v, "d.lat_cpu_per_delivery_us", (get(r, v, "hold.lat.cpu_lp_s") + get(r, v, "hold.lat.cpu_web_s")) * 1e6 / d)
        d = get(r, v, "fan.flood.delivered")
        if (d != "" && d > 0)
            put(r, v, "d.cpu_per_delivery_us", (get(r, v, "fan.flood.cpu_lp_s") + get(r, v, "fan.flood.cpu_web_s")) * 1e6 / d)
        lost = 0; dup = 0; failed = 0
        n = split("hold.lat fan.lat fan.flood slow.rate many.rate", ph, " ")
        for (i = 1; i <= n; i++) {
            lost += get(r, v, ph[i] ".lost"); dup += get(r, v, ph[i] ".dup"); failed += get(r, v, ph[i] ".closed")
        }
        n = split("hold fan slow many", sc, " ")
        for (i = 1; i <= n; i++) failed += get(r, v, sc[i] ".connect.failed")
        put(r, v, "d.lost", lost); put(r, v, "d.dup", dup); put(r, v, "d.failed", failed)
    }
    printf "litepush vs nchan: %s round(s)%s, %s s; ratios are litepush / nchan (lower is better for\n", rounds, quick == 1 ? " (BENCH_QUICK: N / 10)" : "", elapsed
    print "memory and latency, higher is better for deliveries/s). Memory = server RSS growth / subscribers."
    table("SSE (litepush.fcgi behind a web server; nchan EventSource)", "lp-sse-lighttpd", "lp-sse-apache", "nchan-sse", "lp+lighttpd", "lp+Apache", "nchan")
    table("WebSocket (litepush-ws; nchan websocket)", "lp-ws-direct", "lp-ws-lighttpd", "nchan-ws", "lp direct", "lp+lighttpd", "nchan")
    print ""
    print "### Targets"
    misses = 0
    if (quick == 1) print "  (BENCH_QUICK: checked at N / 10, indicative only; the targets are for full N)"
    split("lp-sse-lighttpd lp-sse-apache lp-ws-direct lp-ws-lighttpd", lpv, " ")
    for (i = 1; i <= 4; i++) {
        x = med(lpv[i], "d.mem_lp"); if (x != "") verdict(x <= 4096, sprintf("%s: %s B per idle subscriber in litepush processes (<= 4096)", lpv[i], fmt(x)))
    }
    for (i = 1; i <= 4; i++) {
        x = med(lpv[i], "slow.rate.p50_ms"); if (x != "") verdict(x <= 2, sprintf("%s: p50 %s ms at %s subs, 10 msg/s (<= 2 ms)", lpv[i], fmt(x), nS))
    }
    a = med("lp-ws-direct", "hold.lat.p99_ms"); b = med("nchan-ws", "hold.lat.p99_ms")
    if (a != "" && b != "") verdict(a <= b, sprintf("WS 1 msg -> %s subs p99: litepush %s ms vs nchan %s ms (<=)", nH, fmt(a), fmt(b)))
    a = med("lp-sse-lighttpd", "hold.lat.p99_ms"); b = med("nchan-sse", "hold.lat.p99_ms")
    if (a != "" && b != "") verdict(a <= 2 * b, sprintf("SSE via lighttpd 1 msg -> %s subs p99: %s ms vs nchan %s ms (<= 2x)", nH, fmt(a), fmt(b)))
    a = med("lp-sse-lighttpd", "hold.lat.p50_ms"); b = med("nchan-sse", "hold.lat.p50_ms")
    if (a != "" && b != "") verdict(a <= 2 * b, sprintf("SSE via lighttpd 1 msg -> %s subs p50: %s ms vs nchan %s ms (<= 2x)", nH, fmt(a), fmt(b)))
    a = med("lp-ws-direct", "fan.flood.dps"); b = med("nchan-ws", "fan.flood.dps")
    if (a != "" && b != "") verdict(a >= b, sprintf("WS fan-out at %s subs: %s vs nchan %s deliveries/s (>=)", nF, fmt(a), fmt(b)))
    a = med("lp-sse-lighttpd", "fan.flood.dps"); b = med("nchan-sse", "fan.flood.dps")
    if (a != "" && b != "") verdict(a >= b / 2, sprintf("SSE via lighttpd at %s subs: %s vs nchan %s deliveries/s (>= half)", nF, fmt(a), fmt(b)))
    for (v in vars) {
        x = total(v, "d.lost") + total(v, "d.dup")
        if (x != 0) verdict(0, sprintf("%s: %d deliveries lost or duplicated", v, x))
    }
    if (misses == 0) print "  all targets met"
}' "$1"
