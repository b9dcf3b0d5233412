#!/usr/bin/env bash
# Installs what the benchmark needs on Debian 12 (as root): wrk, ab, nginx, libev-dev and PostgreSQL
# from Debian, the peers and psycopg into bench/.venv, and builds aiowsgi in place.  A peer that
# fails to install is written to bench/.venv/install-failures.json and the runner records it as
# unavailable.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

say() { printf '[setup] %s\n' "$*"; }

if command -v apt-get >/dev/null 2>&1; then
    missing=""
    command -v wrk >/dev/null || missing="$missing wrk"
    command -v ab >/dev/null || missing="$missing apache2-utils"
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
    [ -f /usr/include/ev.h ] || missing="$missing libev-dev"
    command -v taskset >/dev/null || missing="$missing util-linux"
    command -v cc >/dev/null || missing="$missing build-essential"
    # The database workloads start their own throw-away cluster (bench/pg.py) with Debian's binaries.
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
    # Debian's own python3 needs these for venvs and for the peers' C extensions.
    "$PYTHON" -c "import ensurepip" 2>/dev/null || missing="$missing python3-venv"
    "$PYTHON" -c "import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" \
        2>/dev/null || missing="$missing python3-dev"
    if [ -n "$missing" ]; then
        say "apt-get install$missing"
        apt-get update -qq || exit 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || exit 1
    fi
    # nginx's and postgresql's packages may start system instances (port 80, 5432); the benchmark
    # runs its own.
else
    say "not Debian: install wrk, ab (ApacheBench), nginx, libev headers and PostgreSQL yourself"
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV" || exit 1
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip wheel >/dev/null 2>&1
# fastwsgi still imports pkg_resources, which setuptools 81 removed.
$PIP install -q "setuptools<81" >/dev/null 2>&1

failures="{}"
record_failure() {  # name, log file
    failures="$("$VENV/bin/python" - "$failures" "$1" "$2" <<'PY'
import json, sys
data = json.loads(sys.argv[1])
with open(sys.argv[3], errors="replace") as f:
    lines = [l.strip() for l in f if l.strip() and not l.startswith("WARNING")]
data[sys.argv[2]] = "pip install failed: " + " | ".join(lines[-3:])
print(json.dumps(data))
PY
)"
}

log="$(mktemp)"
# psycopg[binary]: psycopg 3 with its C implementation and its own libpq.
for pkg in matplotlib bottle flask django "psycopg[binary]" gunicorn gevent waitress bjoern fastwsgi \
        granian uwsgi meinheld; do
    if ! $PIP install -q "$pkg" >"$log" 2>&1; then
        if [ "$pkg" = meinheld ] && $PIP install -q --no-deps meinheld >>"$log" 2>&1; then
            # meinheld pins greenlet<0.5, which no longer builds; its server runs without it.
            say "meinheld: installed without its greenlet pin"
            continue
        fi
        say "$pkg: failed to install (recorded as unavailable)"
        record_failure "$pkg" "$log"
    fi
done
rm -f "$log"
printf '%s\n' "$failures" > "$VENV/install-failures.json"

say "building aiowsgi in place"
make -s -C "$ROOT" sysdeps >/dev/null 2>&1 || true
if ! (cd "$ROOT" && AIOWSGI_WERROR="${AIOWSGI_WERROR:-1}" "$VENV/bin/python" setup.py -q build_ext --inplace) \
        >"$VENV/aiowsgi-build.log" 2>&1; then
    say "aiowsgi failed to build (see $VENV/aiowsgi-build.log); it will be recorded as unavailable"
fi
sha="$(sha1sum < "$HERE/setup.sh" | cut -c1-12)"
echo "$sha" > "$VENV/.setup-stamp"
say "done"
