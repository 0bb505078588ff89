#!/usr/bin/env bash
# Integration tests against real Apache and lighttpd on loopback (see run.py).
# Called by `make integration`; arguments are passed on to run.py.
set -u
cd "$(dirname "$0")"
if [ ! -d node_modules/eventsource ] || [ ! -d node_modules/ws ]; then
    npm install --no-audit --no-fund --loglevel=error >/dev/null || {
        echo "integration: npm install failed"; echo "integration: 0 passed, 1 failed"; exit 1; }
fi
exec python3 run.py "$@"
