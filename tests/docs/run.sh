#!/usr/bin/env bash
# The man pages in man/: each renders without a warning (groff -ww and
# man --warnings), has a NAME line that whatis can index (lexgrog), and
# mentions every flag that its program's --help prints. Programs not built
# yet are skipped with a SKIP line. Last line: "docs: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
for c in groff man lexgrog; do
    command -v "$c" >/dev/null || { echo "docs: $c is missing (tests/deps.sh installs man-db and groff)";
                                   echo "docs: 0 passed, 1 failed"; exit 1; }
done
shopt -s nullglob
pages=(man/*.[1-8])
[ ${#pages[@]} -gt 0 ] || bad "no man pages in man/"
for p in "${pages[@]}"; do
    w=$(groff -man -ww -z "$p" 2>&1)
    [ -z "$w" ] && ok "$p: groff -man -ww is silent" || bad "$p: groff warns: ${w//$'\n'/ | }"
    w=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$p" 2>&1 >/dev/null)
    [ -z "$w" ] && ok "$p: man --warnings -l is silent" || bad "$p: man warns: ${w//$'\n'/ | }"
    for s in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
        grep -q "^\.SH \"\?$s" "$p" || bad "$p: no $s section"
    done
    lexgrog "$p" >/dev/null 2>&1 && ok "$p: whatis can parse its NAME" || bad "$p: lexgrog cannot parse NAME"
done
# program -> its page
for pair in cgi-bin/litepush.fcgi:man/litepush.fcgi.8 ./litepush-ws:man/litepush-ws.1 \
            ./litepush-prune:man/litepush-prune.1 ./litepush-token:man/litepush-token.1; do
    prog=${pair%%:*}; page=${pair#*:}
    if [ ! -x "$prog" ]; then echo "SKIP $prog is not built: its --help is not checked against $page"; continue; fi
    if [ ! -f "$page" ]; then bad "$page is missing for $prog"; continue; fi
    for s in OPTIONS "EXIT STATUS" FILES EXAMPLES; do
        grep -q "^\.SH \"\?$s" "$page" || bad "$page: no $s section"
    done
    src=$(sed 's/\\-/-/g' "$page")
    missing=()
    for f in $("$prog" --help 2>&1 | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
        grep -qE -- "(^|[^a-z0-9-])$f([^a-z0-9-]|$)" <<<"$src" || missing+=("$f")
    done
    [ ${#missing[@]} -eq 0 ] && ok "$page documents every flag of $prog --help" ||
        bad "$page lacks ${missing[*]} (printed by $prog --help)"
done
echo "docs: $pass passed, $fail failed"
[ "$fail" = 0 ]
