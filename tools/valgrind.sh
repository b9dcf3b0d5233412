#!/usr/bin/env bash
# Run a subset of the tests with every server process under valgrind memcheck (the pytest
# process itself stays uninstrumented: tests/support/server.py puts AIOWSGI_SERVER_WRAPPER in
# front of every server's command line).  PYTHONMALLOC=malloc sends every Python allocation
# to valgrind's malloc, so CPython needs no suppressions for pymalloc;
# tools/valgrind-python.supp holds the few CPython-internal reports left.
# Any memcheck error, or memory definitely lost, in any server fails the run.
#
# Usage: tools/valgrind.sh [pytest args]  (default: the smuggling tests and a short soak)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=build/valgrind
rm -rf "$OUT"
mkdir -p "$OUT"
export PYTHONMALLOC=malloc
export AIOWSGI_SLOW=5
export AIOWSGI_SOAK_REQUESTS=${VALGRIND_SOAK_REQUESTS:-600}
export AIOWSGI_SERVER_WRAPPER="valgrind --tool=memcheck --error-exitcode=99 \
  --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --track-origins=yes --num-callers=30 --suppressions=$PWD/tools/valgrind-python.supp \
  --log-file=$PWD/$OUT/vg.%p.log"
status=0
if [ $# -gt 0 ]; then
  "$PYTHON" -m pytest -q -p no:cacheprovider "$@" || status=$?
else
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_request_smuggling.py || status=$?
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_leaks.py -m soak || status=$?
fi
bad=0
for f in "$OUT"/vg.*.log; do
  [ -e "$f" ] || continue
  if grep -q -E "ERROR SUMMARY: [1-9]" "$f"; then
    bad=$((bad + 1))
    echo "=== $f"
    sed -n '/^==[0-9]*== [A-Z].*\(Invalid\|uninitialised\|Uninitialised\|definitely lost\|Mismatched\|overlap\)/,/^==[0-9]*== $/p' "$f" | head -80
  fi
done
n=$(ls "$OUT"/vg.*.log 2>/dev/null | wc -l)
echo "valgrind: $n server processes checked, $bad with errors (pytest status $status)"
[ "$bad" = 0 ] || exit 1
exit "$status"
