# hardening.mk: sanitizers, fuzzing, valgrind and the refcount soak (issue 8).
# Included from the Makefile; every target builds what it needs in its own folder under build/
# (the in-place extension is left alone).  Times on the 2-core CI machine in comments.
#
#   make asan-test       ASan+UBSan (gcc) build, whole suite + a 4,000-request soak   ~4 min
#   make tsan-test       ThreadSanitizer (gcc) build, the suite with --threads 4 + soak
#   make fuzz            libFuzzer (clang) on the connection path, FUZZ_SECONDS (60)  ~1.5 min
#   make valgrind        memcheck on the servers of the smuggling tests + a short soak ~1 min
#   make refcount-soak   the soak under Debian's python3-dbg (sys.gettotalrefcount)   ~40 s
#   make hardening       all four
PYTHON ?= python3
FUZZ_SECONDS ?= 60

.PHONY: hardening hardening-deps asan-test tsan-test fuzz fuzz-corpus valgrind refcount-soak

# clang + compiler-rt for libFuzzer, valgrind, a debug CPython with pytest for the refcount soak
hardening-deps:
	@missing=""; \
	command -v clang >/dev/null || missing="$$missing clang"; \
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 \
	  || missing="$$missing libclang-rt-14-dev"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	python3-dbg -c "import pytest, setuptools" 2>/dev/null \
	  || missing="$$missing python3-dbg python3-dev python3-pytest python3-setuptools"; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

asan-test: hardening-deps
	tools/sanitizer-test.sh asan

tsan-test: hardening-deps
	tools/sanitizer-test.sh tsan

fuzz: hardening-deps
	tools/fuzz.sh $(FUZZ_SECONDS)

# regenerate tests/fuzz_corpus from tools/make_fuzz_corpus.py
fuzz-corpus:
	$(PYTHON) tools/make_fuzz_corpus.py

valgrind: hardening-deps
	tools/valgrind.sh

refcount-soak: hardening-deps
	tools/refcount-soak.sh

hardening: asan-test tsan-test fuzz valgrind refcount-soak
