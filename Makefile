# One-command set-up on a fresh Debian 12 machine (root): `make serve` or `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# Test dependencies come from requirements-test.txt (one list for make and CI).
export AIOWSGI_WERROR ?= 1

.PHONY: all deps sysdeps testdeps pydeps build test serve clean

all: build

# llhttp: the C sources of Debian 12's node-llhttp are extracted without pulling in nodejs;
# newer systems get libllhttp-dev.  Skipped when llhttp is already there.
sysdeps:
	@if [ -f /usr/share/llhttp/llhttp.c ] || pkg-config --exists libllhttp 2>/dev/null \
	    || [ -n "$$LLHTTP_SRC$$LLHTTP_PREFIX" ]; then \
	  echo "llhttp: found"; \
	elif command -v apt-get >/dev/null; then \
	  apt-get update -qq; \
	  if apt-cache show libllhttp-dev >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllhttp-dev pkg-config; \
	  else \
	    tmp=$$(mktemp -d) && (cd $$tmp && apt-get download node-llhttp) \
	      && dpkg-deb -x $$tmp/node-llhttp_*.deb / && rm -rf $$tmp; \
	  fi; \
	else \
	  echo "aiowsgi: install llhttp first (see README.rst)"; exit 1; \
	fi

# Tools the tests drive: curl as a client, nginx as a real reverse proxy in front of aiowsgi.
testdeps:
	@missing=""; for tool in curl nginx; do command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] \
	    || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

pydeps:
	$(PIP) install -q -r requirements-test.txt

deps: sysdeps testdeps pydeps

build: sysdeps
	$(PYTHON) setup.py -q build_ext --inplace

test: deps build
	$(PYTHON) -m pytest -q tests

serve: sysdeps build
	PYTHONPATH=$(CURDIR) $(PYTHON) examples/hello.py

clean:
	rm -rf build aiowsgi/*.so *.egg-info
