# From a checkout on a fresh Debian 12 (root) with only python3, gcc, make and git:
# `make serve` or `make test` does the whole set-up itself (README.rst, "Set-up in two commands").
#
# Python packages go into the project's virtual environment .venv/, made from PYTHON on first
# use and remade when PYTHON names another interpreter; aiowsgi is installed into it in
# editable mode (the console script `aiowsgi` runs the checkout) and its extension is built in
# place.  What Debian must provide is installed with apt-get by tools/sysdeps.sh.  Nothing is
# ever pip-installed into the system interpreter (PEP 668).  Each step leaves a stamp in
# .venv/, so a second run skips what is done; `make clean-venv` starts over.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
VPIP := $(VPY) -m pip --disable-pip-version-check -q
# the test dependencies: one list for make and CI
TEST_REQUIREMENTS := requirements-test.txt
export AIOWSGI_WERROR ?= 1

.PHONY: all sysdeps build test serve clean clean-venv FORCE

all: build

# Which of tools/sysdeps.sh's sets to install.  A target-specific value holds for the target's
# prerequisites too, so `make test` asks apt-get once for everything it needs.
SYSDEPS ?= build
test: SYSDEPS = build test
sysdeps:
	@tools/sysdeps.sh $(PYTHON) $(SYSDEPS)

# The interpreter and version the venv was made from; rewritten (and the venv remade) only when
# PYTHON now names another, so that what depends on it is redone only then.
$(VENV)/made-from: FORCE | sysdeps
	@want=$$($(PYTHON) -c 'import sys; print(sys.executable, "%d.%d" % sys.version_info[:2])') \
	  || exit 1; \
	if [ "$$(cat $@ 2>/dev/null)" != "$$want" ]; then \
	  echo "venv: $(VENV) from $$want"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && echo "$$want" >$@; \
	fi

# What building in place needs without build isolation: pyproject.toml's [build-system], in a
# setuptools recent enough for editable installs (64) and to need no `wheel` package (70.1).
$(VENV)/build-deps: $(VENV)/made-from
	$(VPIP) install "setuptools>=70.1"
	@touch $@

$(VENV)/test-deps: $(TEST_REQUIREMENTS) $(VENV)/made-from
	$(VPIP) install -r $(TEST_REQUIREMENTS)
	@touch $@

# aiowsgi's metadata and console script in the venv, pointing at this checkout
$(VENV)/installed: pyproject.toml setup.py $(VENV)/build-deps
	$(VPIP) install --no-build-isolation --no-deps --editable .
	@touch $@

# the extension, rebuilt from csrc/ in place on every run (what the tests and the venv import)
build: $(VENV)/installed
	$(VPY) setup.py -q build_ext --inplace

test: build $(VENV)/test-deps
	PATH=$(VENV)/bin:$$PATH $(VPY) -m pytest -q tests

serve: build
	@echo "Serving examples/hello.py on http://127.0.0.1:8000/ (Ctrl-C stops it)"
	$(VPY) examples/hello.py

clean:
	rm -rf build aiowsgi/*.so *.egg-info

clean-venv:
	rm -rf $(VENV)

# Sanitizers, fuzzing, valgrind, refcount soak (issue 8): `make hardening`.
include hardening.mk
