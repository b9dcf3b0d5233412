#!/usr/bin/env bash
# The leak soak (tests/test_leaks.py -m soak) under a debug CPython, which has
# sys.gettotalrefcount(): on top of RSS and descriptors, the total reference count of the
# server process must not drift.  Debian's python3-dbg (3.11 debug build) is used; the extension is built for it in a
# copy of the tree under build/refcount/ (a debug interpreter needs a debug-ABI extension).
#
# Usage: tools/refcount-soak.sh [pytest args]   Environment: PYTHON_DBG (python3-dbg),
# REFCOUNT_SOAK_REQUESTS (80000, as the plain soak).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_DBG=${PYTHON_DBG:-python3-dbg}
command -v "$PYTHON_DBG" >/dev/null || { echo "refcount-soak: $PYTHON_DBG not found (apt-get install python3-dbg python3-dev python3-pytest python3-setuptools)"; exit 1; }
"$PYTHON_DBG" -c "import sys, pytest, setuptools; sys.gettotalrefcount" \
  || { echo "refcount-soak: $PYTHON_DBG lacks pytest or setuptools"; exit 1; }
TREE=build/refcount/tree
rm -rf "$TREE"
mkdir -p "$TREE"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$TREE" 2>/dev/null || true
cd "$TREE"
"$PYTHON_DBG" setup.py -q build_ext --inplace 2>&1 | grep -v -i -E "warn|^ *$" || true
"$PYTHON_DBG" -c "import aiowsgi._core as c, sys; print('debug core:', c.__file__, sys.gettotalrefcount())"
export AIOWSGI_SOAK_REQUESTS=${REFCOUNT_SOAK_REQUESTS:-80000}
if [ $# -gt 0 ]; then
  exec "$PYTHON_DBG" -m pytest -q -s -p no:cacheprovider "$@"
fi
exec "$PYTHON_DBG" -m pytest -q -s -p no:cacheprovider tests/test_leaks.py -m soak
