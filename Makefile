# litepush — one plain GNU Makefile.
#   make                 build cgi-bin/litepush.fcgi, litepush-ws, litepush-prune, litepush-token
#   make WERROR=1        the same with -Werror (CI)
#   make CFLAGS=-O3      other optimisation/debug flags; the project's own stay
#   make SANITIZE=address,undefined   instrumented build
#   make test            unit tests (ASan+UBSan), fuzz corpus replay, integration tests
#                        (SQLite, then PostgreSQL: make pg)
#   make fuzz            build the libFuzzer targets and run each one briefly
#   make client          headless-Chromium test of js/litepush.js through Apache and lighttpd
#   make docs-check      the man pages render without warnings and cover every --help flag
#   make fcgid           the README's mod_fcgid recipe through Apache + libapache2-mod-fcgid
#   make deb             the Debian package (build/deb/litepush_*.deb), checked by lintian
#   make package         make deb, then install, run behind Apache and lighttpd, purge
#   make demo            install what is missing, build, start a live demo on loopback
#   make bench           benchmark against nchan, then PostgreSQL vs SQLite (see README)
#   make bench-pg        only PostgreSQL vs SQLite
#   make install         PREFIX=/usr/local DESTDIR=

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
FUZZ_CC ?= clang-14

# Libraries by their pkg-config name, and the Debian package that has each.
PKGS := fcgi sqlite3 libpq libcrypto zlib
DEB_fcgi      := libfcgi-dev
DEB_sqlite3   := libsqlite3-dev
DEB_libcrypto := libssl-dev
DEB_zlib      := zlib1g-dev
DEB_libpq     := libpq-dev
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# One flag set for every build of the sources: programs, the sanitized unit
# tests, the fuzz targets and bench/lpbench. It lives apart from CFLAGS, so
# that `make CFLAGS=-O3` replaces only the optimisation and debug flags.
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wformat=2 -Werror=format-security
PROJECT_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Ibuild -iquote src $(PKG_CFLAGS)
ifdef WERROR
PROJECT_CFLAGS += -Werror
endif
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
# A comma inside $(call ...) arguments.
, := ,
SAN_FLAGS = -fsanitize=$(1) -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS ?= -O2 -g
ALL_CFLAGS := $(PROJECT_CFLAGS) $(HARDEN) $(CFLAGS)
ALL_LDFLAGS := $(LDFLAGS)
ifdef SANITIZE
ALL_CFLAGS += $(call SAN_FLAGS,$(SANITIZE))
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif
LDLIBS := $(PKG_LIBS) -lpthread

B := build
# Every module but the mains goes into one archive that programs and tests link.
MAINS   := src/fcgi_main.c src/ws_main.c src/prune_main.c src/token_main.c
LIB_SRC := $(filter-out $(MAINS),$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(B)/obj/%.o)

PROGRAMS := cgi-bin/litepush.fcgi $(if $(wildcard src/ws_main.c),litepush-ws) \
            $(if $(wildcard src/prune_main.c),litepush-prune) litepush-token

.PHONY: all test unit fuzz fuzz-replay integration admin browser client docs-check fcgid deb package pg demo bench bench-pg clean install
all: $(PROGRAMS)

# A stamp of the flags: changing CFLAGS or SANITIZE rebuilds everything.
# Making it first checks that every library is there, so that a missing one
# stops the build with its name instead of with a compiler error.
$(B)/flags.stamp: FORCE
	@command -v pkg-config >/dev/null || \
	  { echo "pkg-config not found: install it (Debian: apt-get install pkg-config)" >&2; exit 1; }
	@for p in $(foreach p,$(PKGS),$(p)=$(DEB_$(p))); do pkg-config --exists $${p%%=*} || \
	  { echo "pkg-config cannot find $${p%%=*}: install its development files" \
	         "(Debian: apt-get install $${p#*=})" >&2; exit 1; }; done
	@mkdir -p $(B)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

$(B)/schema_sql.h: sql/schema.sql
	@mkdir -p $(B)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/.*/"&\\n"/' $< > $@

$(B)/schema_pg_sql.h: sql/schema-postgresql.sql
	@mkdir -p $(B)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/.*/"&\\n"/' $< > $@

$(B)/obj/%.o: src/%.c $(B)/flags.stamp $(B)/schema_sql.h $(B)/schema_pg_sql.h
	@mkdir -p $(B)/obj
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/liblitepush.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

cgi-bin/litepush.fcgi: $(B)/obj/fcgi_main.o $(B)/liblitepush.a
	@mkdir -p cgi-bin
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
litepush-ws: $(B)/obj/ws_main.o $(B)/liblitepush.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
litepush-prune: $(B)/obj/prune_main.o $(B)/liblitepush.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)
litepush-token: $(B)/obj/token_main.o $(B)/liblitepush.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- unit tests: always under ASan+UBSan, each tests/unit/test_X.c is one binary
UNIT_CFLAGS := $(PROJECT_CFLAGS) -O1 -g $(call SAN_FLAGS,address$(,)undefined)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%)
$(B)/san/%.o: src/%.c $(B)/flags.stamp $(B)/schema_sql.h $(B)/schema_pg_sql.h
	@mkdir -p $(B)/san
	$(CC) $(UNIT_CFLAGS) -c $< -o $@
$(B)/liblitepush-san.a: $(LIB_SRC:src/%.c=$(B)/san/%.o)
	rm -f $@ && ar rcs $@ $^
$(B)/unit/%: tests/unit/%.c tests/unit/test.h $(B)/liblitepush-san.a
	@mkdir -p $(B)/unit
	$(CC) $(UNIT_CFLAGS) -Wno-missing-prototypes -Itests/unit -o $@ $< $(B)/liblitepush-san.a $(LDLIBS)
unit: $(UNIT_BIN)
	@tests/run-unit.sh $(UNIT_BIN)

# ---- fuzz targets: tests/fuzz/fuzz_X.c, corpus in tests/fuzz/corpus/X/
FUZZ_CFLAGS := $(PROJECT_CFLAGS) -O1 -g $(call SAN_FLAGS,fuzzer$(,)address$(,)undefined)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(B)/flags.stamp $(B)/schema_sql.h $(B)/schema_pg_sql.h
	@mkdir -p $(B)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-missing-prototypes -o $@ $< $(LIB_SRC) $(LDLIBS)
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do n=$${f##*/fuzz_}; mkdir -p $(B)/fuzz-work/$$n; \
	  echo "== $$n"; $$f -max_total_time=$${FUZZ_SECONDS:-20} -dict=tests/fuzz/$$n.dict \
	    $(B)/fuzz-work/$$n tests/fuzz/corpus/$$n 2>&1 | tail -n 3 || exit 1; done
fuzz-replay: $(FUZZ_BIN)
	@tests/run-fuzz-replay.sh $(FUZZ_BIN)

# ---- bench/lpbench: the load generator, built with the same flags
bench/lpbench: bench/lpbench.c $(B)/flags.stamp
	$(CC) $(ALL_CFLAGS) -MF $(B)/lpbench.d -o $@ $< $(ALL_LDFLAGS) $(shell pkg-config --libs sqlite3 libcrypto 2>/dev/null)

integration: all
	@tests/integration/run.sh

admin: all
	@tests/admin/run.sh

browser: all
	@tests/browser/run.sh

pg: all
	@tests/pg/run.sh

client: all
	@tests/browser/run.sh client.mjs

docs-check: all
	@tests/docs/run.sh

fcgid: all
	@tests/fcgid/run.sh

# The Debian package, built from the files git tracks or would (not the
# ignored ones: no build output) in a copy under
# build/deb (debian/; dpkg-buildpackage -b), then checked with lintian.
deb:
	@tests/deps.sh deb
	@rm -rf $(B)/deb && mkdir -p $(B)/deb/litepush
	@if git rev-parse --git-dir >/dev/null 2>&1; then git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - ; \
	  else tar --exclude=./build --exclude=./.git -cf - . ; fi | tar -xf - -C $(B)/deb/litepush
	@echo "deb: dpkg-buildpackage -b -us -uc (log in $(B)/deb/build.log)"
	@cd $(B)/deb/litepush && nice dpkg-buildpackage -b -us -uc -j2 > ../build.log 2>&1 || \
	  { tail -n 40 ../build.log; exit 1; }
	@cd $(B)/deb && lintian --info --display-info litepush_*.deb > lintian.log 2>&1; \
	  cat lintian.log; ! grep -q '^E: ' lintian.log
	@ls $(B)/deb/*.deb

# Builds the package, installs it, runs it behind Apache and lighttpd through
# the packaged confs, purges it (root or sudo).
package:
	@tests/package/run.sh

test:
	@tests/run-all.sh

demo:
	@demo/run.sh

bench: all bench/lpbench
	@bench/run.sh

bench-pg: all
	@python3 bench/pg.py | tee bench/last-report-pg.txt

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/cgi-bin \
	  $(DESTDIR)$(PREFIX)/share/litepush/sql/publish $(DESTDIR)$(PREFIX)/share/litepush/apache-conf \
	  $(DESTDIR)$(PREFIX)/share/litepush/systemd $(DESTDIR)$(PREFIX)/share/litepush/demo
	install -m 755 cgi-bin/litepush.fcgi $(DESTDIR)$(PREFIX)/lib/cgi-bin/litepush.fcgi
	install -m 755 litepush-ws litepush-prune litepush-token $(DESTDIR)$(PREFIX)/bin/
	install -m 644 sql/*.sql $(DESTDIR)$(PREFIX)/share/litepush/sql/
	install -m 644 sql/publish/*.py sql/publish/*.php $(DESTDIR)$(PREFIX)/share/litepush/sql/publish/
	install -m 755 sql/publish/publish.sh $(DESTDIR)$(PREFIX)/share/litepush/sql/publish/
	install -m 644 apache-conf/*.conf $(DESTDIR)$(PREFIX)/share/litepush/apache-conf/
	install -m 644 systemd/litepush-* $(DESTDIR)$(PREFIX)/share/litepush/systemd/
	install -m 644 demo/index.html $(DESTDIR)$(PREFIX)/share/litepush/demo/
	install -m 644 js/litepush.js $(DESTDIR)$(PREFIX)/share/litepush/
	ln -sf ../litepush.js $(DESTDIR)$(PREFIX)/share/litepush/demo/litepush.js
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7 \
	  $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 644 man/litepush-ws.1 man/litepush-prune.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/litepush-token.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/litepush.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 man/litepush.fcgi.8 $(DESTDIR)$(PREFIX)/share/man/man8/

clean:
	rm -rf $(B) cgi-bin/litepush.fcgi litepush-ws litepush-prune litepush-token bench/lpbench

-include $(wildcard $(B)/obj/*.d $(B)/san/*.d $(B)/lpbench.d $(B)/tsan/obj/*.d)

# ---- make tsan: both programs built with ThreadSanitizer into build/tsan/,
# then the integration tests run against them; any report fails the run.
TSAN := $(B)/tsan
TSAN_CFLAGS := $(PROJECT_CFLAGS) -O1 -g -fsanitize=thread -fno-omit-frame-pointer
$(TSAN)/obj/%.o: src/%.c $(B)/flags.stamp $(B)/schema_sql.h
	@mkdir -p $(TSAN)/obj
	$(CC) $(TSAN_CFLAGS) -c $< -o $@
$(TSAN)/litepush.fcgi: $(TSAN)/obj/fcgi_main.o $(LIB_SRC:src/%.c=$(TSAN)/obj/%.o)
	$(CC) -fsanitize=thread -o $@ $^ $(LDLIBS)
$(TSAN)/litepush-ws: $(TSAN)/obj/ws_main.o $(LIB_SRC:src/%.c=$(TSAN)/obj/%.o)
	$(CC) -fsanitize=thread -o $@ $^ $(LDLIBS)
tsan: all $(TSAN)/litepush.fcgi $(TSAN)/litepush-ws
	@tests/run-tsan.sh $(TSAN)
.PHONY: tsan
