# hardening.mk: sanitizers, fuzzing, valgrind and the refcount soak (issue 8).
# Included from the Makefile; every target builds what it needs in its own folder under build/
# (the in-place extension is left alone).  Times on the 2-core CI machine in comments.
#
#   make asan-test       ASan+UBSan (gcc) build, the suite in both thread modes + soak ~4-6 min
#   make tsan-test       ThreadSanitizer (gcc) build, the suite with --threads 4 + soak ~5 min
#   make fuzz            libFuzzer (clang) on the connection path, FUZZ_SECONDS (60)  ~1.5 min
#   make valgrind        memcheck on the servers of the smuggling tests + a short soak ~1 min
#   make refcount-soak   the soak under Debian's python3-dbg (sys.gettotalrefcount)   ~40 s
#   make hardening       all five
FUZZ_SECONDS ?= 60

.PHONY: hardening hardening-deps asan-test tsan-test fuzz fuzz-corpus valgrind refcount-soak

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

hardening: asan-test tsan-test fuzz valgrind refcount-soak
