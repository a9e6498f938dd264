# tide: build, test and tooling. `make` builds in-tree so that bin/tide and
# `require "tide"` work from the checkout; see README.md.

LUA       ?= lua5.4
LUA_INC   ?= /usr/include/lua5.4
BUSTED    ?= $(LUA) /usr/bin/busted
BUILD     ?= build
SO_DIR    ?= lua
OPT       ?= -O2
SAN       ?=
CC        ?= gcc

CFLAGS_BASE = -std=gnu11 -D_GNU_SOURCE -g $(OPT) -fPIC -Wall -Wextra -Wshadow -Wno-unused-parameter \
              -Icore -I$(LUA_INC) $(SAN)
LDLIBS    = -luv -llmdb -lzstd -lreadline -lm -lpthread

CORE_SRC  = $(filter-out core/l_%.c,$(wildcard core/*.c))
LUA_SRC   = $(wildcard core/l_*.c)
CORE_OBJ  = $(CORE_SRC:core/%.c=$(BUILD)/core/%.o)
LUA_OBJ   = $(LUA_SRC:core/%.c=$(BUILD)/core/%.o)
CTEST_SRC = $(wildcard spec/c/test_*.c)
CTEST_BIN = $(CTEST_SRC:spec/c/%.c=$(BUILD)/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
CORE_SO   = $(SO_DIR)/tide/core.so
LIBTIDE   = $(BUILD)/libtide.a

DEB_PKGS  = gcc make pkg-config lua5.4 liblua5.4-dev libuv1-dev liblmdb-dev \
            libzstd-dev libreadline-dev lua-cjson lua-busted luarocks lua-check lua-ldoc lua-markdown \
            lmdb-utils cppcheck valgrind tmux

# PostgreSQL connector (issue 17): libpq to build, the server for its specs
# and benchmark (spec/connectors_postgres_spec.lua, bench/postgres.lua).
DEB_PKGS += libpq-dev postgresql-15
PG_INC    ?= /usr/include/postgresql
CFLAGS_BASE += -I$(PG_INC)
LDLIBS    += -lpq

# The UI (issue 16): http-parser for its server, a Prometheus parser and a
# browser for its tests.
LDLIBS   += -lhttp_parser
DEB_PKGS += libhttp-parser-dev python3-prometheus-client chromium

.PHONY: all deps deps-kafka-src kafka-broker test ctest spec asan fuzz fuzz-seeds lint bench bench-stream bench-event-time bench-soak bench-session bench-postgres bench-join bench-process bench-memlimit bench-kafka bench-scaleout demo clean install uninstall doc test-install bench-parallel tsan helgrind

all: $(CORE_SO) $(LIBTIDE)

$(BUILD)/core/%.o: core/%.c $(wildcard core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -c -o $@ $<

$(LIBTIDE): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CORE_SO): $(LUA_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: spec/c/test_%.c spec/c/t.h $(LIBTIDE)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -Ispec/c -o $@ $< $(LIBTIDE) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIBTIDE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -o $@ $< $(LIBTIDE) $(LDLIBS)

# The fault-injection shim of spec/fault_spec.lua (spec/fault/shim.c): an
# LD_PRELOAD library, never sanitized (it is a test tool, loaded into
# children of the ASan run as well), so always at build/.
FAULT_SO  = build/libtidefault.so

$(FAULT_SO): spec/fault/shim.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -g -O2 -fPIC -shared -Wall -Wextra -Wshadow -o $@ $< -ldl

spec asan: $(FAULT_SO)

# Kafka (issue 14): the source and sink connectors link librdkafka.
LDLIBS   += -lrdkafka

# The Kafka test broker (issue 14, tools/kafka-broker/README.md): a
# librdkafka mock cluster with Kafka's transaction semantics added, and a
# control channel on stdin, for the Kafka specs (spec/kafka_broker.lua
# starts it); tide-kafka-txclient is the specs' transactional client. Both
# link a static librdkafka built from Debian's source of librdkafka
# (fetched into deps/ by `make deps`, never at build time) with the
# patches of tools/kafka-broker/patches/ applied to a copy in build/.
# Test tools, never sanitized, always at build/ (like the fault shim).
DEB_PKGS += librdkafka-dev kcat dpkg-dev zlib1g-dev patch
RDKAFKA_DEB     = librdkafka=2.0.2-1
RDKAFKA_SRC     = deps/librdkafka-2.0.2
RDKAFKA_BUILD   = build/librdkafka
RDKAFKA_A       = $(RDKAFKA_BUILD)/src/librdkafka.a
RDKAFKA_PATCHES = $(sort $(wildcard tools/kafka-broker/patches/*.patch))
RDKAFKA_LIBS    = -lm -lz -ldl -lpthread -lrt
KAFKA_BROKER    = build/tide-kafka-broker
KAFKA_TXCLIENT  = build/tide-kafka-txclient
KAFKA_TOOL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -g -O2 -Wall -Wextra -Wshadow -Wno-unused-parameter \
                    -I$(RDKAFKA_BUILD)/src

kafka-broker: $(KAFKA_BROKER) $(KAFKA_TXCLIENT)

$(RDKAFKA_A): $(RDKAFKA_PATCHES)
	@test -f $(RDKAFKA_SRC)/src/rdkafka_mock.c || \
	  { echo "kafka-broker: $(RDKAFKA_SRC) is missing: run make deps (it fetches Debian's librdkafka source)" >&2; exit 1; }
	rm -rf $(RDKAFKA_BUILD) && mkdir -p $(dir $(RDKAFKA_BUILD)) && cp -R $(RDKAFKA_SRC) $(RDKAFKA_BUILD)
	@set -e; for p in $(RDKAFKA_PATCHES); do echo "patch $$p"; patch -s -p1 -d $(RDKAFKA_BUILD) < $$p; done
	@# (the log is kept out of the tree: mklove loads every configure.* there as a module)
	cd $(RDKAFKA_BUILD) && ./configure --disable-ssl --disable-gssapi --disable-sasl --disable-zstd \
	  --disable-lz4-ext --disable-curl >../librdkafka-configure.out 2>&1 || \
	  { tail -n 20 ../librdkafka-configure.out; exit 1; }
	$(MAKE) -C $(RDKAFKA_BUILD)/src librdkafka.a >build/librdkafka-make.out 2>&1 || \
	  { tail -n 30 build/librdkafka-make.out; exit 1; }

$(KAFKA_BROKER): tools/kafka-broker/broker.c tools/kafka-broker/lines.h $(RDKAFKA_A)
	$(CC) $(KAFKA_TOOL_CFLAGS) -o $@ $< $(RDKAFKA_A) $(RDKAFKA_LIBS)

$(KAFKA_TXCLIENT): tools/kafka-broker/txclient.c tools/kafka-broker/lines.h $(RDKAFKA_A)
	$(CC) $(KAFKA_TOOL_CFLAGS) -o $@ $< $(RDKAFKA_A) $(RDKAFKA_LIBS)

spec asan: $(KAFKA_BROKER) $(KAFKA_TXCLIENT)

# deps-kafka-src: Debian's source package of librdkafka into deps/ (kept by
# `make clean`), through deb-src entries made from the machine's own
# /etc/apt/sources.list.d/debian.sources, with apt's lists and cache in a
# private directory (the system's apt state is not touched).
deps-kafka-src:
	@if [ -f $(RDKAFKA_SRC)/src/rdkafka_mock.c ]; then echo "deps: $(RDKAFKA_SRC) present"; exit 0; fi; \
	set -e; src=/etc/apt/sources.list.d/debian.sources; \
	test -f $$src || { echo "deps: $$src is missing: cannot make deb-src entries for librdkafka's source" >&2; exit 1; }; \
	apt=$$(pwd)/deps/apt; rm -rf $$apt; mkdir -p $$apt/sources.list.d $$apt/lists/partial $$apt/cache/archives/partial; \
	sed 's/^Types:.*/Types: deb-src/' $$src >$$apt/sources.list.d/deb-src.sources; \
	opts="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$$apt/sources.list.d \
	  -o Dir::State::Lists=$$apt/lists -o Dir::Cache=$$apt/cache -o APT::Sandbox::User=$$(id -un)"; \
	echo "deps: apt-get source $(RDKAFKA_DEB) into deps/"; \
	apt-get $$opts update -qq && \
	( cd deps && apt-get $$opts source -qq $(RDKAFKA_DEB) ) && \
	test -f $(RDKAFKA_SRC)/src/rdkafka_mock.c && rm -rf $$apt


# fuzz: the libFuzzer harnesses of spec/fuzz/ (README.md there), built with
# clang against a core built with ASan and UBSan in build-fuzz/. Each first
# replays its regression inputs (spec/fuzz/regress/<name>/), then runs for
# FUZZ_SECONDS from its committed corpus (spec/fuzz/corpus/<name>/; what it
# finds goes to build-fuzz/corpus/<name>/), one harness at a time, on one
# core. A crash stops the target; the input is in build-fuzz/crash-<name>-*.
FUZZ_SECONDS ?= 20
FUZZ_CC   ?= clang
FUZZ_SAN   = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_NAMES = $(patsubst spec/fuzz/fuzz_%.c,%,$(wildcard spec/fuzz/fuzz_*.c))
DEB_PKGS  += clang libclang-rt-14-dev

fuzz:
	$(MAKE) BUILD=build-fuzz SO_DIR=build-fuzz/lua CC=$(FUZZ_CC) OPT=-O1 \
	  SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" build-fuzz/libtide.a
	@set -e; for n in $(FUZZ_NAMES); do \
	  echo "$(FUZZ_CC) ... -o build-fuzz/fuzz_$$n spec/fuzz/fuzz_$$n.c"; \
	  $(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Icore $(FUZZ_SAN) -fsanitize=fuzzer \
	    -o build-fuzz/fuzz_$$n spec/fuzz/fuzz_$$n.c build-fuzz/libtide.a $(LDLIBS); \
	done
	@set -e; for n in $(FUZZ_NAMES); do \
	  echo "== fuzz_$$n: regression inputs, then $(FUZZ_SECONDS) s"; log=build-fuzz/fuzz_$$n.log; \
	  if [ -n "$$(ls spec/fuzz/regress/$$n 2>/dev/null)" ]; then \
	    build-fuzz/fuzz_$$n spec/fuzz/regress/$$n/* >$$log 2>&1 || { tail -n 40 $$log; exit 1; }; fi; \
	  mkdir -p build-fuzz/corpus/$$n; \
	  build-fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
	    -artifact_prefix=build-fuzz/crash-$$n- build-fuzz/corpus/$$n spec/fuzz/corpus/$$n >$$log 2>&1 || \
	    { tail -n 40 $$log; echo "fuzz_$$n: failed (the input: build-fuzz/crash-$$n-*)"; exit 1; }; \
	  grep -E "^#[0-9]+[[:space:]]+DONE" $$log || true; \
	done

# fuzz-seeds: rewrite the binary seeds of spec/fuzz/corpus/ (spec/fuzz/seeds.c).
fuzz-seeds: $(LIBTIDE)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -o $(BUILD)/fuzz_seeds spec/fuzz/seeds.c $(LIBTIDE) $(LDLIBS)
	mkdir -p spec/fuzz/corpus/block spec/fuzz/corpus/state spec/fuzz/corpus/session && \
	  $(BUILD)/fuzz_seeds spec/fuzz/corpus

# deps: install the Debian packages that are missing (as root), or say how.
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	echo "deps: missing:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "deps: run as root: apt-get update && apt-get install -y$$missing"; exit 1; \
	fi
	@$(MAKE) --no-print-directory deps-kafka-src

ctest: $(CTEST_BIN)
	@set -e; for t in $(CTEST_BIN); do echo "== $$t"; $(CTEST_ENV) $$t; done

spec: all
	$(BUSTED) $(BUSTED_ARGS)

# test: every C test, then every busted spec; ends with busted's summary line.
test: all ctest spec

# asan: a separate build with AddressSanitizer and UBSan; the Lua interpreter
# is not instrumented, so the runtime is preloaded for the specs.
asan:
	$(MAKE) BUILD=build-asan SO_DIR=build-asan/lua OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  CTEST_ENV="ASAN_OPTIONS=detect_leaks=1" build-asan/lua/tide/core.so build-asan/libtide.a ctest
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0 TIDE_CPATH="build-asan/lua/?.so" $(BUSTED)

# tsan: the C tests of threads (spec/c/test_pool.c: the pool and decoding
# on it; spec/c/test_paragg.c: aggregation on it; spec/c/test_fileread.c:
# file reads on a thread of their own; spec/c/test_ckpt.c: the overlapped
# commit and the topic append it waits for) built with ThreadSanitizer in
# build-tsan and run; helgrind: the same tests of the normal build under
# valgrind's thread checker.
tsan:
	$(MAKE) BUILD=build-tsan SO_DIR=build-tsan/lua OPT=-O1 SAN="-fsanitize=thread -fno-omit-frame-pointer" \
	  build-tsan/test_pool build-tsan/test_paragg build-tsan/test_fileread build-tsan/test_ckpt
	TSAN_OPTIONS=halt_on_error=1 build-tsan/test_pool
	TSAN_OPTIONS=halt_on_error=1 build-tsan/test_paragg
	TSAN_OPTIONS=halt_on_error=1 build-tsan/test_fileread
	TSAN_OPTIONS=halt_on_error=1 build-tsan/test_ckpt

helgrind: $(BUILD)/test_pool $(BUILD)/test_paragg $(BUILD)/test_fileread $(BUILD)/test_ckpt
	valgrind --tool=helgrind --error-exitcode=1 $(BUILD)/test_pool
	valgrind --tool=helgrind --error-exitcode=1 $(BUILD)/test_paragg
	valgrind --tool=helgrind --error-exitcode=1 $(BUILD)/test_fileread
	valgrind --tool=helgrind --error-exitcode=1 $(BUILD)/test_ckpt

lint:
	luacheck lua bin/tide spec examples bench
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --inline-suppr -Icore --suppress=missingIncludeSystem core spec/c

# bench: the storage and query benchmark (bench/run.lua), then the streaming
# one (bench/stream.lua); both take --events N and --rounds R, so BENCH_ARGS
# reaches both unless BENCH_STREAM_ARGS says otherwise. See bench/RESULTS.md.
BENCH_STREAM_ARGS ?= $(BENCH_ARGS)

bench: all $(BENCH_BIN)
	$(LUA) bench/run.lua $(BENCH_ARGS)
	$(LUA) bench/stream.lua $(BENCH_STREAM_ARGS)

# bench-stream: throughput, batch overhead and latency of streaming queries
# (issue 5); bench/sock_sender is the latency benchmark's sender.
bench-stream: all $(BENCH_BIN)
	$(LUA) bench/stream.lua $(BENCH_STREAM_ARGS)

# bench-event-time: the standard workload as an event-time streaming query
# (watermark, 10-second windows, update mode) from a file and from a topic,
# against the baseline (issue 6). See bench/RESULTS.md.
bench-event-time: all
	$(LUA) bench/event_time.lua $(BENCH_EVENT_TIME_ARGS)

# bench-parallel: the streaming query into a topic sink and the static file
# query with workers = 1 and 2, beside the baseline, with peak memory
# (issue 21). See bench/RESULTS.md.
bench-parallel: all
	$(LUA) bench/parallel.lua $(BENCH_PARALLEL_ARGS)

# bench-soak: 10 million disordered events through a windowed count in
# append mode; state rows, RSS and checkpoint size stay bounded, the output
# is checked (issue 6). spec/soak_spec.lua runs the same checks, smaller.
bench-soak: all
	$(LUA) bench/soak.lua $(BENCH_SOAK_ARGS)

# bench-session: a session window aggregation against the same one with
# tide.window over the same rows, medians of 5 rounds and their ratio
# (issue 13). See bench/RESULTS.md.
bench-session: all
	$(LUA) bench/session.lua $(BENCH_SESSION_ARGS)

# bench-join: a stream-stream inner join of 2M + 2M rows with a 10-minute
# range condition, topics -> topic, against the shared baseline's
# parse-only rate in the same rounds (issue 19). See bench/RESULTS.md.
bench-join: all
	$(LUA) bench/join.lua $(BENCH_JOIN_ARGS)

# bench-process: the Lua stateful operator (group_by():process) over 5M rows with
# 100k keys, against the baseline's parse-only rate (issue 19). See bench/RESULTS.md.
bench-process: all
	$(LUA) bench/process.lua $(BENCH_PROCESS_ARGS)

# bench-postgres: the postgres sink's append (COPY) against `psql \copy` of
# the same rows into the same throwaway server, and update mode's upserts;
# medians of 5 rounds and the ratio (issue 17). See bench/RESULTS.md.
bench-postgres: all
	$(LUA) bench/postgres.lua $(BENCH_POSTGRES_ARGS)

# bench-memlimit: a no-watermark aggregation over 50 million distinct keys
# with state_memory_limit, and a smaller one without, in child processes:
# peak RSS and throughput (issue 18). See bench/RESULTS.md.
bench-memlimit: all
	$(LUA) bench/memlimit.lua $(BENCH_MEMLIMIT_ARGS)

# bench-kafka: the Kafka source through the standard workload against a
# plain librdkafka consumer loop (bench/kafka_consume.c) reading the same
# messages of the test broker, and the shared baseline (bench/kafka.lua).
bench-kafka: all $(BUILD)/bench/kafka_consume $(KAFKA_BROKER)
	$(LUA) bench/kafka.lua $(BENCH_KAFKA_ARGS)

# bench-scaleout: the standard workload from Kafka to Kafka as `tide run
# --application-id` processes, 1 and 2 of one application, and one plain
# query, against the shared baseline (issue 15, bench/scaleout.lua); the
# scaling ratio of 2 processes to 1. See bench/RESULTS.md.
bench-scaleout: all $(BUILD)/bench/kafka_consume $(KAFKA_BROKER) $(KAFKA_TXCLIENT)
	$(LUA) bench/scaleout.lua $(BENCH_SCALEOUT_ARGS)

demo: deps all
	$(LUA) bin/tide run examples/quickstart/pipeline.lua

# doc: the HTML API reference (LDoc, docs/config.ld) in DOC_DIR. Markdown
# formatting needs lua-markdown, in the Lua that runs ldoc (5.1 on Debian);
# without it the comments come out as plain text (-D plain).
DOC_DIR   ?= build/doc

doc:
	@rm -rf "$(DOC_DIR)/index.html" "$(DOC_DIR)/modules"
	ldoc -c docs/config.ld -d "$(abspath $(DOC_DIR))" \
	  $$(lua5.1 -e 'require "markdown"' 2>/dev/null || echo "-D plain") .

# install, uninstall: through LuaRocks and tide-scm-1.rockspec, offline
# (--deps-mode=none: Lua is the rock's only dependency, the C libraries
# are Debian's), into TREE or LuaRocks' default tree (/usr/local as root).
# The rock is built in a temporary copy of the sources: LuaRocks' builtin
# build writes its objects next to the sources and installs every file
# under lua/ (core.so of `make`, the connectors symlink's README), so the
# copy holds only what the rockspec names and keeps the checkout clean.
LUAROCKS  ?= luarocks --lua-version=5.4
ROCKSPEC   = tide-scm-1.rockspec
ROCK_TREE  = $(if $(TREE),--tree="$(abspath $(TREE))")

install:
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && \
	mkdir -p "$$stage/core" "$$stage/lua/tide" "$$stage/connectors" "$$stage/bin" && \
	cp $(ROCKSPEC) README.md "$$stage/" && cp core/*.c core/*.h "$$stage/core/" && \
	cp lua/tide/*.lua "$$stage/lua/tide/" && cp connectors/*.lua "$$stage/connectors/" && \
	for d in connectors/*/; do mkdir -p "$$stage/$$d" && cp "$$d"*.lua "$$stage/$$d"; done && \
	mkdir -p "$$stage/lua/tide/ui" && cp lua/tide/ui/* "$$stage/lua/tide/ui/" && \
	cp bin/tide "$$stage/bin/" && \
	cd "$$stage" && $(LUAROCKS) $(ROCK_TREE) make --deps-mode=none $(ROCKSPEC)

uninstall:
	$(LUAROCKS) $(ROCK_TREE) remove tide

# test-install: install into a temporary tree, then, with only that tree on
# the paths and from a directory outside the checkout, require "tide" from
# lua5.4 and run a copy of the quickstart with the installed `tide`;
# uninstall and remove the tree. spec/install_spec.lua checks the same.
test-install:
	@tree=$$(mktemp -d) && trap 'rm -rf "$$tree"' EXIT && \
	$(MAKE) --no-print-directory install TREE="$$tree" && \
	mkdir "$$tree/run" && cp -R examples/quickstart "$$tree/run/" && \
	( cd "$$tree/run" && unset LUA_PATH_5_4 LUA_CPATH_5_4 && eval "$$($(LUAROCKS) --tree="$$tree" path)" && \
	  core=$$(lua5.4 -e 'require "tide"; print(package.searchpath("tide.core", package.cpath))') && \
	  case "$$core" in "$$tree"/*) echo "test-install: require \"tide\" loads $$core" ;; \
	    *) echo "test-install: tide.core is not the tree's: $$core" >&2; exit 1 ;; esac && \
	  "$$tree/bin/tide" run quickstart/pipeline.lua ) && \
	$(MAKE) --no-print-directory uninstall TREE="$$tree" && \
	test ! -e "$$tree/bin/tide" && echo "test-install: ok"

clean:
	rm -rf build build-asan build-fuzz lua/tide/core.so core/*.o
