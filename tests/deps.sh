#!/usr/bin/env bash
# Installs what building, testing and the demo need, when it is missing.
# Debian 12 packages only; Node's clients come from npm in tests/integration.
set -euo pipefail
need=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v cc >/dev/null        || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
have_pc fcgi    || need+=(libfcgi-dev)
have_pc sqlite3 || need+=(libsqlite3-dev)
have_pc libcrypto || need+=(libssl-dev)
have_pc zlib    || need+=(zlib1g-dev)
command -v sqlite3 >/dev/null   || need+=(sqlite3)
command -v curl >/dev/null      || need+=(curl)
command -v apache2 >/dev/null || [ -x /usr/sbin/apache2 ] || need+=(apache2)
command -v lighttpd >/dev/null || [ -x /usr/sbin/lighttpd ] || need+=(lighttpd)
if [ "${1:-}" = test ]; then
    command -v clang-14 >/dev/null || need+=(clang-14)
    [ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ] ||
        ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
        need+=(libclang-rt-14-dev)
    command -v python3 >/dev/null   || need+=(python3)
    command -v man >/dev/null       || need+=(man-db)
    command -v groff >/dev/null     || need+=(groff-base)
    [ -e /usr/lib/apache2/modules/mod_fcgid.so ] || need+=(libapache2-mod-fcgid)
    # The /metrics cases parse with Debian's Prometheus client (/usr/bin/python3).
    /usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || need+=(python3-prometheus-client)
fi
if [ "${1:-}" = test ] || [ "${1:-}" = deb ]; then
    command -v dh >/dev/null                || need+=(debhelper)
    command -v dpkg-buildpackage >/dev/null || need+=(dpkg-dev)
    command -v lintian >/dev/null           || need+=(lintian)
fi
if [ "${1:-}" = bench ]; then
    [ -e /usr/share/nginx/modules-available/mod-http-nchan.conf ] ||
        [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(nginx libnginx-mod-nchan)
fi
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null  || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts the servers it installs; ours run from generated configs.
    for s in apache2 lighttpd nginx; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
fi
