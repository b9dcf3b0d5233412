#!/usr/bin/env bash
# Build csrc/fuzz/fuzz_conn.c (libFuzzer, ASan+UBSan, clang) with the core's sources and
# llhttp's compiled in and CPython embedded, then fuzz for a bounded time.
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
mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/crashes"

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
CFLAGS="-std=gnu11 -g -O1 $SAN -I$LLHTTP_INC -I$PYINC -Icsrc"

# llhttp: instrumented too (its states are what the fuzzer explores), with setup.py's macro
objs=()
for f in api http llhttp; do
  "$CLANG" $CFLAGS -w -DLLHTTP_STRICT_MODE=1 -c "$LLHTTP_SRC/$f.c" -o "$OUT/obj/llhttp_$f.o"
  objs+=("$OUT/obj/llhttp_$f.o")
done
for f in csrc/*.c csrc/fuzz/*.c; do
  o="$OUT/obj/$(basename "${f%.c}").o"
  "$CLANG" $CFLAGS -Wall -Wextra -Wno-missing-field-initializers -c "$f" -o "$o"
  objs+=("$o")
done
"$CLANG" $SAN "${objs[@]}" -L"$PYLIBDIR" -Wl,-rpath,"$PYLIBDIR" -l"$PYLIB" -ldl -lm -lpthread \
  -o "$OUT/fuzz_conn"
echo "fuzz: built $OUT/fuzz_conn"

# CPython is not instrumented and frees some memory only at exit: no leak checking.
export ASAN_OPTIONS="detect_leaks=0:allow_user_segv_handler=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
args=(-dict=csrc/fuzz/http.dict -max_len=8192 -timeout=10 -rss_limit_mb=2048
      -artifact_prefix="$OUT/crashes/" -print_final_stats=1 -detect_leaks=0)
if [ "$SECONDS_TO_RUN" = 0 ]; then
  "$OUT/fuzz_conn" "${args[@]}" -runs=0 tests/fuzz_corpus
else
  "$OUT/fuzz_conn" "${args[@]}" -max_total_time="$SECONDS_TO_RUN" \
    "$OUT/corpus" tests/fuzz_corpus
fi
if compgen -G "$OUT/crashes/*" >/dev/null; then
  echo "fuzz: crashing inputs in $OUT/crashes:"; ls -l "$OUT/crashes"; exit 1
fi
