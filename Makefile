# litepush — one plain GNU Makefile.
#   make                 build cgi-bin/litepush.fcgi and litepush-ws
#   make WERROR=1        the same with -Werror (CI)
#   make SANITIZE=address,undefined   instrumented build
#   make test            unit tests (ASan+UBSan), fuzz corpus replay, integration tests
#   make fuzz            build the libFuzzer targets and run each one briefly
#   make demo            install what is missing, build, start a live demo on loopback
#   make bench           benchmark against nchan (see README)
#   make install         PREFIX=/usr/local DESTDIR=

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
FUZZ_CC ?= clang-14

PKGS     := fcgi sqlite3 libcrypto zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wformat=2 -Werror=format-security
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE $(WARN) -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
          -MMD -MP -Ibuild -iquote src $(PKG_CFLAGS)
ifdef WERROR
CFLAGS += -Werror
endif
ifdef SANITIZE
CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif
LDLIBS := $(PKG_LIBS) -lpthread

B := build
# Every module but the mains goes into one archive that programs and tests link.
MAINS   := src/fcgi_main.c src/ws_main.c src/prune_main.c
LIB_SRC := $(filter-out $(MAINS),$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(B)/obj/%.o)

PROGRAMS := cgi-bin/litepush.fcgi $(if $(wildcard src/ws_main.c),litepush-ws) \
            $(if $(wildcard src/prune_main.c),litepush-prune)

.PHONY: all test unit fuzz fuzz-replay integration admin browser demo bench clean install
all: $(PROGRAMS)

# A stamp of the flags: changing CFLAGS or SANITIZE rebuilds everything.
$(B)/flags.stamp: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@
FORCE:

$(B)/schema_sql.h: sql/schema.sql
	@mkdir -p $(B)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/.*/"&\\n"/' $< > $@

$(B)/obj/%.o: src/%.c $(B)/flags.stamp $(B)/schema_sql.h
	@mkdir -p $(B)/obj
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/liblitepush.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

cgi-bin/litepush.fcgi: $(B)/obj/fcgi_main.o $(B)/liblitepush.a
	@mkdir -p cgi-bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
litepush-ws: $(B)/obj/ws_main.o $(B)/liblitepush.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
litepush-prune: $(B)/obj/prune_main.o $(B)/liblitepush.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- unit tests: always under ASan+UBSan, each tests/unit/test_X.c is one binary
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%)
$(B)/san/%.o: src/%.c $(B)/schema_sql.h
	@mkdir -p $(B)/san
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) -MMD -MP -Ibuild -iquote src $(PKG_CFLAGS) $(SAN) -c $< -o $@
$(B)/liblitepush-san.a: $(LIB_SRC:src/%.c=$(B)/san/%.o)
	rm -f $@ && ar rcs $@ $^
$(B)/unit/%: tests/unit/%.c tests/unit/test.h $(B)/liblitepush-san.a
	@mkdir -p $(B)/unit
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) -Wno-missing-prototypes -Ibuild -iquote src -Itests/unit \
	  $(PKG_CFLAGS) $(SAN) -o $@ $< $(B)/liblitepush-san.a $(LDLIBS)
unit: $(UNIT_BIN)
	@tests/run-unit.sh $(UNIT_BIN)

# ---- fuzz targets: tests/fuzz/fuzz_X.c, corpus in tests/fuzz/corpus/X/
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -Ibuild -iquote src $(PKG_CFLAGS) \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(B)/schema_sql.h
	@mkdir -p $(B)/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(LDLIBS)
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do n=$${f##*/fuzz_}; mkdir -p $(B)/fuzz-work/$$n; \
	  echo "== $$n"; $$f -max_total_time=$${FUZZ_SECONDS:-20} -dict=tests/fuzz/$$n.dict \
	    $(B)/fuzz-work/$$n tests/fuzz/corpus/$$n 2>&1 | tail -n 3 || exit 1; done
fuzz-replay: $(FUZZ_BIN)
	@tests/run-fuzz-replay.sh $(FUZZ_BIN)

integration: all
	@tests/integration/run.sh

admin: all
	@tests/admin/run.sh

browser: all
	@tests/browser/run.sh

test:
	@tests/run-all.sh

demo:
	@demo/run.sh

bench:
	@bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/cgi-bin \
	  $(DESTDIR)$(PREFIX)/share/litepush/sql/publish $(DESTDIR)$(PREFIX)/share/litepush/apache-conf \
	  $(DESTDIR)$(PREFIX)/share/litepush/systemd $(DESTDIR)$(PREFIX)/share/litepush/demo
	install -m 755 cgi-bin/litepush.fcgi $(DESTDIR)$(PREFIX)/lib/cgi-bin/litepush.fcgi
	install -m 755 litepush-ws litepush-prune $(DESTDIR)$(PREFIX)/bin/
	install -m 644 sql/*.sql $(DESTDIR)$(PREFIX)/share/litepush/sql/
	install -m 644 sql/publish/* $(DESTDIR)$(PREFIX)/share/litepush/sql/publish/
	install -m 644 apache-conf/*.conf $(DESTDIR)$(PREFIX)/share/litepush/apache-conf/
	install -m 644 systemd/litepush-* $(DESTDIR)$(PREFIX)/share/litepush/systemd/
	install -m 644 demo/index.html $(DESTDIR)$(PREFIX)/share/litepush/demo/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	for p in cgi-bin/litepush.fcgi ./litepush-ws ./litepush-prune; do \
	  n=$${p##*/}; { echo ".TH $$n 1"; echo ".SH SYNOPSIS"; echo ".nf"; $$p --help; echo ".fi"; } \
	    > $(DESTDIR)$(PREFIX)/share/man/man1/$$n.1; done

clean:
	rm -rf $(B) cgi-bin/litepush.fcgi litepush-ws litepush-prune

-include $(wildcard $(B)/obj/*.d $(B)/san/*.d)

# ---- make tsan: both programs built with ThreadSanitizer into build/tsan/,
# then the integration tests run against them; any report fails the run.
TSAN := build/tsan
TSAN_FLAGS := -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) -Ibuild -iquote src $(PKG_CFLAGS) \
              -fsanitize=thread -fno-omit-frame-pointer
$(TSAN)/obj/%.o: src/%.c $(B)/schema_sql.h
	@mkdir -p $(TSAN)/obj
	$(CC) $(TSAN_FLAGS) -MMD -MP -c $< -o $@
$(TSAN)/litepush.fcgi: $(TSAN)/obj/fcgi_main.o $(LIB_SRC:src/%.c=$(TSAN)/obj/%.o)
	$(CC) -fsanitize=thread -o $@ $^ $(LDLIBS)
$(TSAN)/litepush-ws: $(TSAN)/obj/ws_main.o $(LIB_SRC:src/%.c=$(TSAN)/obj/%.o)
	$(CC) -fsanitize=thread -o $@ $^ $(LDLIBS)
tsan: all $(TSAN)/litepush.fcgi $(TSAN)/litepush-ws
	@tests/run-tsan.sh $(TSAN)
.PHONY: tsan
-include $(wildcard $(TSAN)/obj/*.d)
