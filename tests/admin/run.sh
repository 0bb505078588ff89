#!/usr/bin/env bash
# Admin tooling tests (see run.py), called by `make admin`; the last line is
# "admin: N passed, N failed".
set -u
cd "$(dirname "$0")"
exec python3 run.py "$@"
