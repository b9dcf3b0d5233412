#!/usr/bin/env bash
# Line coverage of the core reached by a fuzz corpus: builds fuzz_conn with clang's
# source-based coverage (no sanitizers), replays the corpus (default: build/fuzz/corpus and
# tests/fuzz_corpus) and prints llvm-cov's per-file report for csrc/.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG=${CLANG:-clang}
PYTHON=${PYTHON:-python3}
OUT=build/fuzz-cov
mkdir -p "$OUT/obj"
LLHTTP_SRC=${LLHTTP_SRC:-/usr/share/llhttp}
LLHTTP_INC=/usr/share/include/llhttp
[ -f "$LLHTTP_SRC/llhttp.h" ] && LLHTTP_INC=$LLHTTP_SRC
PYINC=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_path('include'))")
PYLIBDIR=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
PYLIB=$("$PYTHON" -c "import sysconfig; print('python' + sysconfig.get_config_var('LDVERSION'))")
COV="-fprofile-instr-generate -fcoverage-mapping"
CFLAGS="-std=gnu11 -g -O1 -fsanitize=fuzzer -I$LLHTTP_INC -I$PYINC -Icsrc"
objs=()
for f in api http llhttp; do
  "$CLANG" $CFLAGS -w -DLLHTTP_STRICT_MODE=1 -c "$LLHTTP_SRC/$f.c" -o "$OUT/obj/llhttp_$f.o"
  objs+=("$OUT/obj/llhttp_$f.o")
done
for f in csrc/*.c csrc/fuzz/*.c; do
  o="$OUT/obj/$(basename "${f%.c}").o"
  "$CLANG" $CFLAGS $COV -c "$f" -o "$o"
  objs+=("$o")
done
"$CLANG" -fsanitize=fuzzer $COV "${objs[@]}" -L"$PYLIBDIR" -Wl,-rpath,"$PYLIBDIR" -l"$PYLIB" \
  -ldl -lm -lpthread -o "$OUT/fuzz_conn_cov"
corpora=("$@")
[ ${#corpora[@]} -gt 0 ] || corpora=(build/fuzz/corpus tests/fuzz_corpus)
LLVM_PROFILE_FILE="$OUT/fuzz.profraw" "$OUT/fuzz_conn_cov" -runs=0 -detect_leaks=0 \
  "${corpora[@]}" >"$OUT/replay.log" 2>&1 || { tail -20 "$OUT/replay.log"; exit 1; }
PROFDATA=$(command -v llvm-profdata || ls /usr/bin/llvm-profdata-* | head -1)
LLVMCOV=$(command -v llvm-cov || ls /usr/bin/llvm-cov-* | head -1)
"$PROFDATA" merge -sparse "$OUT/fuzz.profraw" -o "$OUT/fuzz.profdata"
"$LLVMCOV" report "$OUT/fuzz_conn_cov" -instr-profile="$OUT/fuzz.profdata" \
  $(ls csrc/*.c) | sed 's|.*/csrc/|csrc/|'
