#!/usr/bin/env bash
# The system packages `make` needs, installed with apt-get when (and only when) they are
# missing: one `apt-get update` and one `apt-get install` for everything asked for.  It checks
# for the things themselves, not for packages, so a Python, llhttp or tool that came from
# elsewhere is used as it is.  Python packages are not its business: they go into the
# project's venv (Makefile), never into the system interpreter (PEP 668).
#
# Usage: tools/sysdeps.sh PYTHON SET...
#   build      PYTHON's venv module and headers, llhttp, the CA certificates pip needs
#   test       curl, nginx, prometheus and haproxy, which the tests drive; iproute2 (`ip
#              netns`, for the test of several hosts); systemd (`systemd-analyze verify` of
#              the example units) and procps (their ExecReload runs /bin/kill)
#   hardening  clang with libFuzzer, valgrind, Debian's python3-dbg with pytest and setuptools
# Without apt-get (not Debian), or not root, it names what is missing and fails.
set -euo pipefail
PYTHON=$1
shift

missing=()
llhttp=present   # present, wanted, or extract (from Debian 12's node-llhttp)

has_llhttp() {
  [ -f /usr/share/llhttp/llhttp.c ] || [ -n "${LLHTTP_SRC:-}${LLHTTP_PREFIX:-}" ] \
    || pkg-config --exists libllhttp 2>/dev/null
}

has_tool() {  # nginx lives in /usr/sbin, which is not on every user's PATH
  command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]
}

check_build() {
  if ! command -v "$PYTHON" >/dev/null; then
    echo "sysdeps: no $PYTHON (apt-get install python3)" >&2
    exit 1
  fi
  # Debian splits the venv module's pip bootstrap and the C headers out of python3
  "$PYTHON" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
  "$PYTHON" -c "import os, sysconfig; assert os.path.isfile(
      os.path.join(sysconfig.get_path('include'), 'Python.h'))" 2>/dev/null \
    || missing+=(python3-dev)
  [ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  has_llhttp || llhttp=wanted
}

check_test() {
  has_tool curl || missing+=(curl)
  has_tool nginx || missing+=(nginx)
  has_tool prometheus || missing+=(prometheus)  # scrapes --metrics-bind in tests/test_metrics.py
  has_tool haproxy || missing+=(haproxy)  # in front of several hosts: tests/test_many_hosts.py
  has_tool ip || missing+=(iproute2)      # their network namespaces, ditto
  has_tool systemd-analyze || missing+=(systemd)  # tests/test_deploy_examples.py
  [ -x /bin/kill ] || missing+=(procps)  # the unit's ExecReload, which verify checks exists
}

check_hardening() {
  has_tool clang || missing+=(clang)
  compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null \
    || missing+=(libclang-rt-14-dev)
  has_tool valgrind || missing+=(valgrind)
  python3-dbg -c "import pytest, setuptools" 2>/dev/null \
    || missing+=(python3-dbg python3-dev python3-pytest python3-setuptools)
}

for set in "$@"; do
  case $set in
    build) check_build ;;
    test) check_test ;;
    hardening) check_hardening ;;
    *) echo "sysdeps: unknown set '$set' (build, test, hardening)" >&2; exit 2 ;;
  esac
done

wanted=("${missing[@]}")
[ "$llhttp" = present ] || wanted+=(llhttp)
[ ${#wanted[@]} = 0 ] && exit 0
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "sysdeps: missing: ${wanted[*]}" >&2
  echo "sysdeps: install them (README.rst, Installation), or run as root on Debian or Ubuntu" >&2
  exit 1
fi

echo "sysdeps: apt-get install ${wanted[*]}"
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -qq -o DPkg::Lock::Timeout=600)  # wait for another apt (unattended-upgrades)
"${apt[@]}" update
if [ "$llhttp" = wanted ]; then
  # Debian 13 and Ubuntu 24.04 package the library; Debian 12 only has its C sources inside
  # node-llhttp, whose files are unpacked so that nodejs is not pulled in (setup.py builds them).
  if apt-cache show libllhttp-dev >/dev/null 2>&1; then
    missing+=(libllhttp-dev pkg-config)
  else
    llhttp=extract
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  "${apt[@]}" install -y "${missing[@]}" >/dev/null
fi
if [ "$llhttp" = extract ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chown _apt "$tmp" 2>/dev/null || true  # apt downloads as the user _apt
  (cd "$tmp" && "${apt[@]}" download node-llhttp)
  dpkg-deb -x "$tmp"/node-llhttp_*.deb /
fi
