#!/usr/bin/env bash
# Build aiowsgi._core with a sanitizer (gcc) in a copy of the tree under build/MODE/, and run
# the test suite against it with the sanitizer's runtime preloaded into the (uninstrumented)
# python.  Every process (pytest and each server it starts) writes its reports to
# build/MODE/reports/; any report fails the run, even if no test noticed.
#
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer: the fast suite in both thread modes,
#         then a short leak soak
#   tsan  ThreadSanitizer: the suite with --threads 4 (the loop without the GIL, the app
#         threads, the hand-overs between them), then the soak with threads
#
# Usage: tools/sanitizer-test.sh asan|tsan [pytest args]
# Environment: PYTHON (python3), SANITIZER_SOAK_REQUESTS (4000).
set -euo pipefail
MODE=${1:?usage: tools/sanitizer-test.sh asan|tsan [pytest args]}
shift
cd "$(dirname "$0")/.."
ROOT=$PWD
# the interpreter itself, not a wrapper script (pyenv's shims are bash, which a preloaded
# ThreadSanitizer runtime crashes)
PYTHON=$("${PYTHON:-python3}" -c "import sys; print(sys.executable)")
OUT=$ROOT/build/$MODE
TREE=$OUT/tree
REPORTS=$OUT/reports

case "$MODE" in
  asan)
    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    LDSAN="-fsanitize=address,undefined"
    RUNTIME="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
    # detect_leaks=0: CPython itself is not leak-clean at exit; leaks are the soak's job.
    # allow_user_segv_handler=0: faulthandler (tests/support/server.py sets PYTHONFAULTHANDLER
    # for every server) would otherwise take SIGSEGV on its alternate stack and ASan's report
    # would lose its stack trace.
    export ASAN_OPTIONS="detect_leaks=0:allow_user_segv_handler=0:abort_on_error=1:halt_on_error=1:log_path=$REPORTS/asan:print_summary=1:strict_string_checks=1:detect_stack_use_after_return=1"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
    export PYTHONMALLOC=malloc   # every Python allocation goes through ASan's malloc
    SUITE=(tests -m "not soak")
    ;;
  tsan)
    SAN="-fsanitize=thread -fno-omit-frame-pointer"
    LDSAN="-fsanitize=thread"
    RUNTIME="$(gcc -print-file-name=libtsan.so)"
    # report_signal_unsafe=0: Python's own signal handler is not ours to judge.
    export TSAN_OPTIONS="log_path=$REPORTS/tsan:halt_on_error=0:report_signal_unsafe=0:second_deadlock_stack=1"
    SUITE=(tests -m "not soak" -k "threads4 or not threads1")
    ;;
  *) echo "sanitizer-test: unknown mode $MODE (asan or tsan)"; exit 2 ;;
esac

rm -rf "$TREE" "$REPORTS"
mkdir -p "$TREE" "$REPORTS"
# the tree as git sees it (tracked and new files, ignored ones left out), without building here
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$TREE" 2>/dev/null || true
(
  cd "$TREE"
  AIOWSGI_CFLAGS="$SAN -g -O1" AIOWSGI_LDFLAGS="$LDSAN" \
    "$PYTHON" setup.py -q build_ext --inplace 2>&1 | grep -v -i -E "warn|^ *$" || true
)
ls "$TREE"/aiowsgi/_core*.so >/dev/null

# Programs the tests run besides python get the real thing without the sanitizer's runtime
# (curl hangs with libasan preloaded; dash and curl crash with libtsan; HAProxy's own threads
# would be reported): a wrapper in python, which runs with either, drops it and execs the
# program.
mkdir -p "$OUT/bin"
for tool in curl nginx haproxy; do
  real=$(command -v "$tool" || { [ -x /usr/sbin/$tool ] && echo /usr/sbin/$tool; } || true)
  [ -n "$real" ] || continue
  "$PYTHON" - "$PYTHON" "$real" "$OUT/bin/$tool" <<'PY'
import os, sys
python, real, path = sys.argv[1:]
with open(path, "w") as f:
    f.write("#!%s -S\nimport os, sys\nos.environ.pop('LD_PRELOAD', None)\n"
            "os.execv(%r, [%r] + sys.argv[1:])\n" % (python, real, real))
os.chmod(path, 0o755)
PY
done
# the venv's console script (aiowsgi) too, when PYTHON is a venv's
export PATH="$OUT/bin:$(dirname "$PYTHON"):$PATH"
export LD_PRELOAD="$RUNTIME"
export AIOWSGI_SLOW=2        # time limits of the hardening tests, doubled
export AIOWSGI_SKIP_RSS_CHECKS=1  # sanitizers keep shadow memory and freed memory: RSS means little
export AIOWSGI_SOAK_REQUESTS=${SANITIZER_SOAK_REQUESTS:-${ASAN_SOAK_REQUESTS:-4000}}

cd "$TREE"
"$PYTHON" -c "import aiowsgi._core as c; print('sanitized core:', c.__file__)"
status=0
if [ $# -gt 0 ]; then
  "$PYTHON" -m pytest -q -p no:cacheprovider "$@" || status=$?
else
  "$PYTHON" -m pytest -q -p no:cacheprovider "${SUITE[@]}" || status=$?
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_leaks.py -m soak || status=$?
fi
unset LD_PRELOAD
if compgen -G "$REPORTS/*" >/dev/null; then
  echo "=== sanitizer reports ($(ls "$REPORTS" | wc -l)) in $REPORTS ==="
  for f in "$REPORTS"/*; do
    echo "--- $f"
    head -80 "$f"
  done
  exit 1
fi
echo "$MODE-test: no sanitizer reports (pytest status $status)"
exit "$status"
