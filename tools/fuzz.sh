#!/usr/bin/env bash
# Build three libFuzzer targets (ASan+UBSan, clang) and fuzz each for a bounded time:
#   fuzz_conn    csrc/fuzz/fuzz_conn.c with every core source and llhttp's compiled in and
#                CPython embedded: the whole request path of a connection (1/2 of the time);
#   fuzz_parser  csrc/fuzz/fuzz_parser.c with parser.c and llhttp only, compiled without
#                Python's headers on the include path: the parser alone (1/4 of the time);
#   fuzz_static  csrc/fuzz/fuzz_static.c with the --static sources (static.c, filecache.c,
#                mime.c, http.c), parser.c and llhttp, without Python's headers: the answer
#                to a request under a static prefix, against a site with symlinks out (1/4).
#
# Usage: tools/fuzz.sh [SECONDS]   (default 60; 0 only builds and replays the seed corpus)
# Environment: CLANG (clang), PYTHON (python3).
# The working corpus is build/fuzz/corpus (seeded from tests/fuzz_corpus); crashes are written
# to build/fuzz/crashes/ and make the script fail.  New interesting inputs stay in
# build/fuzz/corpus: copy the small, meaningful ones to tests/fuzz_corpus/ by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
CLANG=${CLANG:-clang}
PYTHON=${PYTHON:-python3}
OUT=build/fuzz
mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/parser-corpus" "$OUT/static-corpus" "$OUT/crashes"

LLHTTP_SRC=${LLHTTP_SRC:-/usr/share/llhttp}
LLHTTP_INC=${LLHTTP_INC:-}
for d in "$LLHTTP_SRC" "$LLHTTP_SRC/../include" /usr/share/include/llhttp; do
  if [ -z "$LLHTTP_INC" ] && [ -f "$d/llhttp.h" ]; then LLHTTP_INC=$d; fi
done
[ -f "$LLHTTP_SRC/llhttp.c" ] || { echo "fuzz: llhttp sources not found (LLHTTP_SRC)"; exit 1; }

PYINC=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_path('include'))")
PYLIBDIR=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
PYLIB=$("$PYTHON" -c "import sysconfig; v=sysconfig.get_config_var; print('python' + v('LDVERSION'))")
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
BASEFLAGS="-std=gnu11 -g -O1 $SAN -I$LLHTTP_INC"
CFLAGS="$BASEFLAGS -I$PYINC -Icsrc"
WARN="-Wall -Wextra -Wno-missing-field-initializers"

# llhttp: instrumented too (its states are what the fuzzer explores), with setup.py's macro
llhttp=()
for f in api http llhttp; do
  "$CLANG" $BASEFLAGS -w -DLLHTTP_STRICT_MODE=1 -c "$LLHTTP_SRC/$f.c" -o "$OUT/obj/llhttp_$f.o"
  llhttp+=("$OUT/obj/llhttp_$f.o")
done
objs=("${llhttp[@]}")
for f in csrc/*.c csrc/fuzz/fuzz_conn.c; do
  o="$OUT/obj/$(basename "${f%.c}").o"
  "$CLANG" $CFLAGS $WARN -c "$f" -o "$o"
  objs+=("$o")
done
"$CLANG" $SAN "${objs[@]}" -L"$PYLIBDIR" -Wl,-rpath,"$PYLIBDIR" -l"$PYLIB" -ldl -lm -lpthread \
  -o "$OUT/fuzz_conn"
echo "fuzz: built $OUT/fuzz_conn"
# the parser alone: no Python include path, so parser.c cannot reach Python.h
"$CLANG" $BASEFLAGS $WARN -Werror csrc/parser.c csrc/fuzz/fuzz_parser.c "${llhttp[@]}" \
  -o "$OUT/fuzz_parser"
echo "fuzz: built $OUT/fuzz_parser"
# the static files alone, also without Python's headers
"$CLANG" $BASEFLAGS $WARN -Werror csrc/static.c csrc/filecache.c csrc/mime.c csrc/http.c \
  csrc/parser.c csrc/fuzz/fuzz_static.c "${llhttp[@]}" -o "$OUT/fuzz_static"
echo "fuzz: built $OUT/fuzz_static"

# CPython is not instrumented and frees some memory only at exit: no leak checking.
export ASAN_OPTIONS="detect_leaks=0:allow_user_segv_handler=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
args=(-dict=csrc/fuzz/http.dict -max_len=8192 -timeout=10 -rss_limit_mb=2048
      -artifact_prefix="$OUT/crashes/" -print_final_stats=1 -detect_leaks=0)
if [ "$SECONDS_TO_RUN" = 0 ]; then
  "$OUT/fuzz_conn" "${args[@]}" -runs=0 tests/fuzz_corpus
  "$OUT/fuzz_parser" "${args[@]}" -runs=0 tests/fuzz_corpus
  "$OUT/fuzz_static" "${args[@]}" -runs=0 tests/fuzz_corpus
else
  "$OUT/fuzz_conn" "${args[@]}" -max_total_time=$(( SECONDS_TO_RUN / 2 )) \
    "$OUT/corpus" tests/fuzz_corpus
  # the same seeds mean something to the parser and the static files too (their first bytes
  # are a header, the rest a request)
  "$OUT/fuzz_parser" "${args[@]}" -max_total_time=$(( SECONDS_TO_RUN / 4 )) \
    "$OUT/parser-corpus" tests/fuzz_corpus
  "$OUT/fuzz_static" "${args[@]}" -max_total_time=$(( SECONDS_TO_RUN - SECONDS_TO_RUN / 2 - SECONDS_TO_RUN / 4 )) \
    "$OUT/static-corpus" tests/fuzz_corpus
fi
if compgen -G "$OUT/crashes/*" >/dev/null; then
  echo "fuzz: crashing inputs in $OUT/crashes:"; ls -l "$OUT/crashes"; exit 1
fi
