#!/usr/bin/env bash
# make fcgid: the README's mod_fcgid (shared hosting) recipe through real
# Apache + Debian's libapache2-mod-fcgid. Assumes `make` has built the
# programs. Last line: "fcgid: N passed, N failed".
cd "$(dirname "$0")" || exit 1
exec nice python3 run.py
