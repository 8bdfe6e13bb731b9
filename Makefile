# outbox - build, test, install.  See README.md.
#
#   make            build outboxd and outbox
#   make check      install missing build/test packages (as root), build,
#                   run the cmocka unit tests and the pytest integration tests,
#                   then (as root) make deb-check
#   make check SAN=1   the same with ASan + UBSan
#   make demo       end-to-end demonstration under ./run/
#   make install    DESTDIR, PREFIX honoured (make uninstall: the same, but the config)
#   make deb        the Debian package, lintian-checked (make deb-check: installed
#                   in a pristine tree of this Debian release in place of nullmailer; as root)
#   make bench      the benchmark (not part of check)
#   make fuzz       the libFuzzer harnesses (clang, ASan + UBSan) in build-fuzz/
#   make fuzz-smoke each harness for FUZZ_SECONDS from its seed corpus
#                   (part of make check when clang is installed)

PREFIX   ?= /usr/local
SBINDIR  ?= $(PREFIX)/sbin
BINDIR   ?= $(PREFIX)/bin
LIBEXECDIR = $(PREFIX)/libexec/outbox
# (outbox finds its helper at BINDIR/../libexec/outbox: keep them together)
MANDIR   ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR  ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
# outbox set-group-ID outbox (the pickup fallback) and outbox.conf
# root:outbox 0640 (read through that group): by default only when
# installing into the system itself; a package does both at install time
SETGID   ?= $(if $(DESTDIR),no,yes)

CC       ?= cc
CFLAGS   ?= -O2 -g
LDFLAGS  ?=
# what the code needs, whatever CFLAGS/LDFLAGS the caller passes
XCFLAGS  := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP
XLDFLAGS := -Wl,--as-needed
PY       := /usr/bin/python3

ifeq ($(SAN),1)
BUILD    := build-san
XCFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
XLDFLAGS += -fsanitize=address,undefined
else
BUILD    := build
endif
ALL_CFLAGS  = $(CFLAGS) $(XCFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(XLDFLAGS)

PKGS     := libuv inih
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -luv -linih)
LIBS     = $(PKG_LIBS) -lmbedtls -lmbedx509 -lmbedcrypto -lpthread -lm
# built-in OAuth2 (oauth2/): the outbox-oauth2 helper only; outboxd runs it
OAUTH_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(wildcard oauth2/*.c))
OAUTH_LIBS = -lcurl -ljansson

COMMON_SRC := $(wildcard common/*.c)
DAEMON_SRC := $(wildcard daemon/*.c)
TOOL_SRC   := $(wildcard tool/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ   := $(TOOL_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

OUTBOXD := $(BUILD)/outboxd
OUTBOX  := $(BUILD)/outbox
PROBE   := $(BUILD)/outbox-probe
OAUTH2  := $(BUILD)/outbox-oauth2
COMPOSE := $(BUILD)/outbox-compose
HELPERS := $(BUILD)/tests/mkqueue $(BUILD)/confdoc $(BUILD)/tests/outbox-runconf

.PHONY: all check unit integration deps demo install uninstall bench clean man fuzz fuzz-smoke fuzz-long \
	deb deb-check
all: $(OUTBOXD) $(OUTBOX) $(PROBE) $(OAUTH2) $(COMPOSE)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	rm -f $@ && ar rcs $@ $^

$(OUTBOXD): $(DAEMON_OBJ) $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# The sendmail command starts for every cron job and script: it maps
# libc only.  inih (a few hundred lines, Debian's libinih.a) is linked
# in, which saves the loader a library (0.1 ms of W1's 2 ms); a fix to
# inih needs a rebuild of outbox, as for any static library.
TOOL_LIBS = -l:libinih.a $(filter-out -linih,$(LIBS))
$(OUTBOX): $(TOOL_OBJ) $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TOOL_LIBS)

# `outbox probe`: a program of its own, so that outbox needs no TLS library
$(PROBE): $(BUILD)/tool/probe/probe.o $(BUILD)/tool/toolconf.o $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# `outbox send`: the composer, with libmagic, apart as well
$(COMPOSE): $(BUILD)/tool/compose/compose.o $(BUILD)/tool/compose/mime.o $(BUILD)/tool/send_args.o $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lmagic

# `outbox oauth2 login`: the device flow, with libcurl, apart as well
$(OAUTH2): $(BUILD)/tool/oauth2/login.o $(BUILD)/tool/toolconf.o $(OAUTH_OBJ) $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(OAUTH_LIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(BUILD)/libcommon.a $(ALL_LDFLAGS) $(LIBS) -lcmocka

# the sendmail command's argument parser is the tool's, tested alone
$(BUILD)/tests/test_sendmail_args: tests/unit/test_sendmail_args.c $(BUILD)/tool/sendmail_args.o $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) -lcmocka

# the daemon's in-memory index, tested alone
$(BUILD)/tests/test_index: tests/unit/test_index.c $(BUILD)/daemon/queue_index.o $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) $(LIBS) -lcmocka

# the scheduler, tested alone against a fake pool
$(BUILD)/tests/test_scheduler: tests/unit/test_scheduler.c $(BUILD)/daemon/scheduler.o $(BUILD)/daemon/queue_index.o $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) $(LIBS) -lcmocka

# the start-up walk, alone on a real spool and loop
$(BUILD)/tests/test_indexer: tests/unit/test_indexer.c $(BUILD)/daemon/indexer.o $(BUILD)/daemon/scheduler.o $(BUILD)/daemon/queue_index.o $(BUILD)/daemon/spool_log.o $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) $(LIBS) -lcmocka

# the composer's encodings, tested alone
# ($^ would hold the headers that -MMD lists for the binary too: filtered)
$(BUILD)/tests/test_mime: tests/unit/test_mime.c $(BUILD)/tool/compose/mime.o $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) $(LIBS) -lcmocka

# The outbox command built with its default configuration at
# /run/outbox-test/outbox.conf: a set-group-ID copy refuses -C and
# OUTBOX_CONF, so a test that runs one as another user writes that file.
RUNCONF := /run/outbox-test/outbox.conf
$(BUILD)/tests/toolconf-runconf.o: tool/toolconf.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DOUTBOX_DEFAULT_CONF='"$(RUNCONF)"' -c -o $@ $<
$(BUILD)/tests/outbox-runconf: $(filter-out $(BUILD)/tool/toolconf.o,$(TOOL_OBJ)) $(BUILD)/tests/toolconf-runconf.o $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TOOL_LIBS)

$(BUILD)/tests/mkqueue: tests/mkqueue.c $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(BUILD)/libcommon.a $(ALL_LDFLAGS) $(LIBS)

deps:
	@scripts/deps.sh

check: deps
	@$(MAKE) --no-print-directory unit integration
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then $(MAKE) --no-print-directory fuzz-smoke; \
	 else echo "fuzz-smoke skipped: no $(FUZZ_CC)"; fi
	@if [ "$(SAN)" = 1 ]; then echo "deb-check skipped under SAN=1 (the package is built without sanitizers)"; \
	 elif [ "$$(id -u)" != 0 ]; then echo "deb-check skipped: it needs root (debootstrap, chroot)"; \
	 else $(MAKE) --no-print-directory deb-check; fi

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# The integration suite in two passes, each with its own closing line:
# the tests that may share the machine on ITEST_JOBS pytest-xdist
# workers at once (they mostly wait on daemons: more workers than
# cores; tests sharing a fixed path are in one xdist_group, run by one
# worker), then those marked serial (they time themselves or load the
# whole machine) alone.  Either failing fails the target; a pass that
# PYTEST_ARGS leaves empty (pytest's 5) does not.
ITEST_JOBS ?= 8
ITEST = OUTBOX_BUILD=$(abspath $(BUILD)) OUTBOX_SAN=$(SAN) $(PY) -m pytest -q tests/integration
ITEST_PARALLEL = $(ITEST) -n $(ITEST_JOBS) --dist loadgroup -m "not serial" $(PYTEST_ARGS)
ITEST_SERIAL = $(ITEST) -m serial $(PYTEST_ARGS)
integration: all $(HELPERS)
	@p=0; s=0; \
	echo '$(ITEST_PARALLEL)'; $(ITEST_PARALLEL) || p=$$?; \
	echo '$(ITEST_SERIAL)'; $(ITEST_SERIAL) || s=$$?; \
	if [ $$p = 5 ] && [ $$s = 5 ]; then echo "integration: no test selected"; exit 1; fi; \
	for rc in $$p $$s; do [ $$rc = 0 ] || [ $$rc = 5 ] || { echo "integration: FAILED"; exit 1; }; done

$(BUILD)/bench/floor: bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/bench/sink: bench/sink.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -D_GNU_SOURCE $(PKG_CFLAGS) -o $@ $< $(PKG_LIBS)

$(BUILD)/bench/submit: bench/submit.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<

$(BUILD)/bench/spawn: bench/spawn.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<

bench: deps all $(BUILD)/bench/floor $(BUILD)/bench/sink $(BUILD)/bench/submit $(BUILD)/bench/spawn $(BUILD)/tests/mkqueue
	$(PY) bench/run.py $(BUILD)

demo: deps all
	@scripts/demo.sh $(BUILD)

# outbox.conf(5)'s key reference is generated from the config table.
$(BUILD)/confdoc: man/confdoc.c $(BUILD)/libcommon.a
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(BUILD)/libcommon.a $(ALL_LDFLAGS) $(LIBS)

man: $(BUILD)/confdoc
	$(BUILD)/confdoc < man/outbox.conf.5.in > man/outbox.conf.5

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/outbox \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	install -m 0755 $(OUTBOXD) $(DESTDIR)$(SBINDIR)/outboxd
	install -m 0755 $(OUTBOX) $(DESTDIR)$(BINDIR)/outbox
	@if [ "$(SETGID)" = yes ] && [ "$$(id -u)" = 0 ] && getent group outbox >/dev/null; then \
		chgrp outbox $(DESTDIR)$(BINDIR)/outbox && chmod 2755 $(DESTDIR)$(BINDIR)/outbox; \
	 else echo "note: $(BINDIR)/outbox is not set-group-ID outbox (SETGID=yes as root with the group: the pickup fallback)"; fi
	install -d $(DESTDIR)$(LIBEXECDIR)
	install -m 0755 $(PROBE) $(DESTDIR)$(LIBEXECDIR)/probe
	install -m 0755 $(OAUTH2) $(DESTDIR)$(LIBEXECDIR)/oauth2
	install -m 0755 $(COMPOSE) $(DESTDIR)$(LIBEXECDIR)/compose
	ln -sf $(BINDIR)/outbox $(DESTDIR)$(SBINDIR)/sendmail
	ln -sf $(BINDIR)/outbox $(DESTDIR)$(BINDIR)/mailq
	$(if $(filter /usr,$(PREFIX)),install -d $(DESTDIR)/usr/lib && ln -sf ../sbin/sendmail $(DESTDIR)/usr/lib/sendmail)
	install -m 0644 man/outbox.1 $(DESTDIR)$(MANDIR)/man1/outbox.1
	install -m 0644 man/outbox.conf.5 $(DESTDIR)$(MANDIR)/man5/outbox.conf.5
	install -m 0644 man/outboxd.8 $(DESTDIR)$(MANDIR)/man8/outboxd.8
	ln -sf ../man1/outbox.1 $(DESTDIR)$(MANDIR)/man8/sendmail.8
	ln -sf outbox.1 $(DESTDIR)$(MANDIR)/man1/mailq.1
	@# root:outbox 0640: outboxd and the set-group-ID command read it through the
	@# group, nobody else (its password_command lines are nobody's business)
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/outbox/outbox.conf ]; then :; \
	 elif [ "$(SETGID)" = yes ] && [ "$$(id -u)" = 0 ] && getent group outbox >/dev/null; then \
		install -m 0640 -o root -g outbox conf/outbox.conf $(DESTDIR)$(SYSCONFDIR)/outbox/outbox.conf; \
	 else install -m 0644 conf/outbox.conf $(DESTDIR)$(SYSCONFDIR)/outbox/outbox.conf; \
		echo "note: $(SYSCONFDIR)/outbox/outbox.conf is 0644 (SETGID=yes as root with the group: root:outbox 0640)"; fi
	sed 's|@SBINDIR@|$(SBINDIR)|g' systemd/outboxd.service.in > $(DESTDIR)$(UNITDIR)/outboxd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/outboxd.service
	install -m 0644 systemd/outboxd.socket $(DESTDIR)$(UNITDIR)/outboxd.socket
	install -m 0644 systemd/outbox.sysusers $(DESTDIR)$(SYSUSERSDIR)/outbox.conf
	install -m 0644 systemd/outbox.tmpfiles $(DESTDIR)$(TMPFILESDIR)/outbox.conf

# What install put, with the same DESTDIR and PREFIX; the configuration
# in SYSCONFDIR/outbox/ stays (it is the administrator's), as does the
# spool (mail may wait in it).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/outboxd $(DESTDIR)$(BINDIR)/outbox $(DESTDIR)$(SBINDIR)/sendmail \
		$(DESTDIR)$(BINDIR)/mailq $(DESTDIR)$(LIBEXECDIR)/probe $(DESTDIR)$(LIBEXECDIR)/oauth2 \
		$(DESTDIR)$(LIBEXECDIR)/compose $(DESTDIR)$(MANDIR)/man1/outbox.1 \
		$(DESTDIR)$(MANDIR)/man5/outbox.conf.5 $(DESTDIR)$(MANDIR)/man8/outboxd.8 \
		$(DESTDIR)$(MANDIR)/man8/sendmail.8 $(DESTDIR)$(MANDIR)/man1/mailq.1 \
		$(DESTDIR)$(UNITDIR)/outboxd.service $(DESTDIR)$(UNITDIR)/outboxd.socket \
		$(DESTDIR)$(SYSUSERSDIR)/outbox.conf $(DESTDIR)$(TMPFILESDIR)/outbox.conf
	$(if $(filter /usr,$(PREFIX)),rm -f $(DESTDIR)/usr/lib/sendmail)
	-rmdir $(DESTDIR)$(LIBEXECDIR) 2>/dev/null

# ---- the Debian package (debian/, SPEC "Packaging") ----
# make deb: build-deb/outbox_VERSION_ARCH.deb with dpkg-buildpackage from a
# clean copy of the tracked files, then lintian (no error or warning).
# make deb-check: that package in a pristine tree of this Debian release (debootstrap):
# it replaces nullmailer, delivers, and leaves its config on dpkg -r.
deb:
	@scripts/deb.sh

deb-check: deb
	@scripts/deb-check.sh

# ---- fuzzing: tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/corpus/NAME/ ----
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP $(FUZZ_SAN)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_COMMON  := $(COMMON_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_TOOL    := $(FUZZ_BUILD)/tool/sendmail_args.o $(FUZZ_BUILD)/tool/submit.o $(FUZZ_BUILD)/tool/toolconf.o $(FUZZ_BUILD)/tool/pickup.o
FUZZ_DAEMON  := $(FUZZ_BUILD)/daemon/smtp_session.o $(FUZZ_BUILD)/daemon/smtp_commands.o $(FUZZ_BUILD)/daemon/smtp_conn.o $(FUZZ_BUILD)/daemon/intake.o $(FUZZ_BUILD)/daemon/scheduler.o \
		$(FUZZ_BUILD)/daemon/queue_index.o $(FUZZ_BUILD)/daemon/spool_log.o
FUZZ_SECONDS ?= 6

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_COMMON) $(FUZZ_TOOL) $(FUZZ_DAEMON)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< \
		$(if $(findstring sendmail,$@),$(FUZZ_TOOL)) $(if $(findstring session,$@),$(FUZZ_DAEMON)) \
		$(FUZZ_COMMON) $(LIBS)

# the objects are kept (make would remove them as intermediate files)
.SECONDARY: $(FUZZ_COMMON) $(FUZZ_TOOL) $(FUZZ_DAEMON)

fuzz: $(FUZZ_BIN)

# Each harness from its committed seeds (and the regression inputs kept
# there), for FUZZ_SECONDS; new inputs go to a scratch corpus, not the
# tree.  FUZZ_JOBS harnesses at a time (one core each), each one's lines
# printed together when it ends.
FUZZ_JOBS ?= 2
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
fuzz-smoke: fuzz
	@$(MAKE) --no-print-directory -j$(FUZZ_JOBS) --output-sync=target $(FUZZ_NAMES:%=fuzz-smoke-%)
	@echo "fuzz-smoke: $(words $(FUZZ_BIN)) passed, 0 failed"

fuzz-smoke-%: $(FUZZ_BUILD)/fuzz_%
	@f=$<; n=$*; work=$(FUZZ_BUILD)/work/$$n; mkdir -p $$work; \
	echo "== fuzz $$n ($(FUZZ_SECONDS) s)"; \
	$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_BUILD)/crash-$$n- $$work tests/fuzz/corpus/$$n 2>&1 \
	  | grep -E "^(stat::number_of_executed_units|INFO: -max_total_time|==.*ERROR|SUMMARY)" || true; \
	test -z "$$(ls $(FUZZ_BUILD)/crash-$$n-* 2>/dev/null)" || \
	  { echo "fuzz $$n found a crash: $$(ls $(FUZZ_BUILD)/crash-$$n-*)"; exit 1; }

# The long run: FUZZ_RUNS executions (or FUZZ_LONG_SECONDS) per harness.
FUZZ_RUNS ?= 10000000
FUZZ_LONG_SECONDS ?= 3600
fuzz-long: fuzz
	@for f in $(FUZZ_BIN); do n=$${f#$(FUZZ_BUILD)/fuzz_}; work=$(FUZZ_BUILD)/work/$$n; \
	  mkdir -p $$work; $$f -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_LONG_SECONDS) -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$n- $$work \
	    tests/fuzz/corpus/$$n > $(FUZZ_BUILD)/long-$$n.log 2>&1; \
	  echo "$$n: exit $$? $$(grep -E 'number_of_executed_units|ERROR' $(FUZZ_BUILD)/long-$$n.log | tr '\n' ' ')"; \
	done

# ---- the delivery engine alone (issue 22): unit tests and fuzz harness ----
# The transaction engine (daemon/transfer.c) and the attempt
# (daemon/attempt.c) link with the common library only.  The engine runs
# over the real SMTP client on a scripted connection: net_write and
# net_fill are wrapped at link time (tests/unit/engine_fake.h).
ENGINE_WRAP := -Wl,--wrap=net_write,--wrap=net_fill
$(BUILD)/tests/test_transfer: tests/unit/test_transfer.c $(BUILD)/daemon/transfer.o $(BUILD)/daemon/attempt.o \
		$(BUILD)/daemon/spool_log.o $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) $(ENGINE_WRAP) $(LIBS) -lcmocka

$(BUILD)/tests/test_attempt: tests/unit/test_attempt.c $(BUILD)/daemon/attempt.o $(BUILD)/daemon/spool_log.o \
		$(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) $(LIBS) -lcmocka

# the report policy of an attempt (RFC 3461 NOTIFY, issue 23): attempt.c as test_attempt
$(BUILD)/tests/test_dsn_policy: tests/unit/test_dsn_policy.c $(BUILD)/daemon/attempt.o $(BUILD)/daemon/spool_log.o \
		$(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(ALL_LDFLAGS) $(LIBS) -lcmocka

FUZZ_ENGINE := $(FUZZ_BUILD)/daemon/transfer.o $(FUZZ_BUILD)/daemon/attempt.o $(FUZZ_BUILD)/daemon/spool_log.o
$(FUZZ_BUILD)/fuzz_transfer: tests/fuzz/fuzz_transfer.c tests/fuzz/fuzz.h tests/unit/engine_fake.h $(FUZZ_ENGINE) \
		$(FUZZ_COMMON)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< $(FUZZ_ENGINE) $(FUZZ_COMMON) \
		$(ENGINE_WRAP) $(LIBS)
.SECONDARY: $(FUZZ_ENGINE)

clean:
	rm -rf build build-san build-fuzz build-deb run

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
