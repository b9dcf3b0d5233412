#!/usr/bin/env bash
# Build aiowsgi._core with AddressSanitizer + UndefinedBehaviorSanitizer (gcc) in a copy of the
# tree under build/asan/, and run the test suite against it with the ASan runtime preloaded
# into the (uninstrumented) python.  Every process (pytest and each server it starts) writes
# sanitizer reports to build/asan/reports/; any report fails the run, even if no test noticed.
#
# Usage: tools/asan-test.sh [pytest args]   (default: the fast suite, then a short leak soak)
# Environment: PYTHON (python3), ASAN_SOAK_REQUESTS (4000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
OUT=$ROOT/build/asan
TREE=$OUT/tree
REPORTS=$OUT/reports

rm -rf "$TREE" "$REPORTS"
mkdir -p "$TREE" "$REPORTS"
# the tree as git sees it (tracked and new files, ignored ones left out), without building here
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$TREE" 2>/dev/null || true

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
(
  cd "$TREE"
  AIOWSGI_CFLAGS="$SAN -g -O1" AIOWSGI_LDFLAGS="-fsanitize=address,undefined" \
    "$PYTHON" setup.py -q build_ext --inplace 2>&1 | grep -v -i -E "warn|^ *$" || true
)
ls "$TREE"/aiowsgi/_core*.so >/dev/null

# Programs the tests run besides python get the real thing without the ASan runtime:
# curl, for one, hangs with libasan preloaded.
mkdir -p "$OUT/bin"
for tool in curl; do
  real=$(command -v "$tool" || true)
  [ -n "$real" ] || continue
  printf '#!/bin/sh\nunset LD_PRELOAD\nexec %s "$@"\n' "$real" >"$OUT/bin/$tool"
  chmod +x "$OUT/bin/$tool"
done
export PATH="$OUT/bin:$PATH"

ASAN_LIB=$(gcc -print-file-name=libasan.so)
UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
export LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB"
# detect_leaks=0: CPython itself is not leak-clean at exit; leaks are the soak's job.
# allow_user_segv_handler=0: faulthandler (tests/support/server.py sets PYTHONFAULTHANDLER for
# every server) would otherwise take SIGSEGV on its alternate stack and ASan's report would
# lose its stack trace.
export ASAN_OPTIONS="detect_leaks=0:allow_user_segv_handler=0:abort_on_error=1:halt_on_error=1:log_path=$REPORTS/asan:print_summary=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
export PYTHONMALLOC=malloc   # every Python allocation goes through ASan's malloc
export AIOWSGI_SLOW=2        # time limits of the hardening tests, doubled
export AIOWSGI_SKIP_RSS_CHECKS=1  # ASan keeps freed memory in quarantine: RSS only grows
export AIOWSGI_SOAK_REQUESTS=${ASAN_SOAK_REQUESTS:-4000}

cd "$TREE"
"$PYTHON" -c "import aiowsgi._core as c; print('sanitized core:', c.__file__)"
status=0
if [ $# -gt 0 ]; then
  "$PYTHON" -m pytest -q -p no:cacheprovider "$@" || status=$?
else
  "$PYTHON" -m pytest -q -p no:cacheprovider tests -m "not soak" || status=$?
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_leaks.py -m soak || status=$?
fi
unset LD_PRELOAD
if compgen -G "$REPORTS/*" >/dev/null; then
  echo "=== sanitizer reports ($(ls "$REPORTS" | wc -l)) in $REPORTS ==="
  for f in "$REPORTS"/*; do
    echo "--- $f"
    head -60 "$f"
  done
  exit 1
fi
echo "asan-test: no sanitizer reports (pytest status $status)"
exit "$status"
