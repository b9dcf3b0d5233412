# hardening.mk: sanitizers, fuzzing, valgrind and the refcount soak (issue 8).
# Included from the Makefile; every target builds what it needs in its own folder under build/
# (the in-place extension is left alone).  Times on the 2-core CI machine in comments.
#
#   make asan-test       ASan+UBSan (gcc) build, the suite in both thread modes + soak ~4-6 min
#   make tsan-test       ThreadSanitizer (gcc) build, the suite with --threads 4 + soak ~5 min
#   make fuzz            libFuzzer (clang) on the connection path, FUZZ_SECONDS (60)  ~1.5 min
#   make valgrind        memcheck on the servers of the smuggling tests + a short soak ~1 min
#   make refcount-soak   the soak under Debian's python3-dbg (sys.gettotalrefcount)   ~40 s
#   make conformance     the parser against h11 over 200,000 generated requests, a
#                        fresh seed each run (printed: AIOWSGI_DIFF_SEED replays it)   ~80 s
#   make hardening       all six
FUZZ_SECONDS ?= 60

.PHONY: hardening hardening-deps asan-test tsan-test fuzz fuzz-corpus valgrind refcount-soak \
        conformance

# The venv with the test dependencies and the in-place build (Makefile), plus clang with
# libFuzzer, valgrind, and a debug CPython with pytest for the refcount soak, all from one
# apt-get run.  The scripts get the venv's python as PYTHON.
hardening-deps: SYSDEPS = build test hardening
hardening-deps: build $(VENV)/test-deps

asan-test: hardening-deps
	PYTHON=$(VPY) tools/sanitizer-test.sh asan

tsan-test: hardening-deps
	PYTHON=$(VPY) tools/sanitizer-test.sh tsan

fuzz: hardening-deps
	PYTHON=$(VPY) tools/fuzz.sh $(FUZZ_SECONDS)

# regenerate tests/fuzz_corpus from tools/make_fuzz_corpus.py
fuzz-corpus:
	$(PYTHON) tools/make_fuzz_corpus.py

valgrind: hardening-deps
	PYTHON=$(VPY) tools/valgrind.sh

refcount-soak: hardening-deps
	tools/refcount-soak.sh

DIFF_CASES ?= 200000
DIFF_SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')

conformance: build $(VENV)/test-deps
	AIOWSGI_DIFF_CASES=$(DIFF_CASES) AIOWSGI_DIFF_SEED=$(DIFF_SEED) \
	  $(VPY) -m pytest -q -s -p no:cacheprovider tests/test_parser_agrees_with_h11.py

hardening: asan-test tsan-test fuzz valgrind refcount-soak conformance
