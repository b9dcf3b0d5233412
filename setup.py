"""Build script for aiowsgi: compiles the C core ``aiowsgi._core`` from ``csrc/``.

llhttp is never vendored.  It is looked up, in order (SPEC section 1):

1. ``LLHTTP_PREFIX``: a prefix holding ``include/llhttp.h`` and ``lib/libllhttp.{a,so}``;
2. ``LLHTTP_SRC``: a folder holding llhttp's ``api.c``, ``http.c`` and ``llhttp.c``;
3. pkg-config ``libllhttp`` (Debian 13, Ubuntu 24.04+, Fedora, Homebrew);
4. the C sources of Debian 12's ``node-llhttp`` (``/usr/share/llhttp``).

llhttp's own sources are compiled with their own flags (they are generated code and are not
warning-clean); the project's sources use ``-Wall -Wextra``, plus ``-Werror`` when
``AIOWSGI_WERROR=1`` (as in CI).
"""

import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LLHTTP_SOURCES = ("api.c", "http.c", "llhttp.c")
DEBIAN_SRC = "/usr/share/llhttp"
DEBIAN_INCLUDE = "/usr/share/include/llhttp"

MISSING_LLHTTP = """\
aiowsgi: cannot find llhttp (the HTTP parser aiowsgi is built on). Install it:
  Debian 12:                 apt-get install node-llhttp
                             (or, without nodejs: apt-get download node-llhttp &&
                              dpkg-deb -x node-llhttp_*.deb /)
  Debian 13, Ubuntu 24.04+:  apt-get install libllhttp-dev
  Fedora:                    dnf install llhttp-devel
  Homebrew:                  brew install llhttp
or point LLHTTP_PREFIX at an install prefix, or LLHTTP_SRC at llhttp's C sources."""


class LLHTTP:
    """Where llhttp lives: include dirs, plus either sources to compile or libraries to link."""

    def __init__(self, include_dirs, sources=(), libraries=(), library_dirs=(), objects=()):
        self.include_dirs = list(include_dirs)
        self.sources = list(sources)
        self.libraries = list(libraries)
        self.library_dirs = list(library_dirs)
        self.objects = list(objects)


def _from_sources(folder):
    sources = [os.path.join(folder, name) for name in LLHTTP_SOURCES]
    if not all(os.path.isfile(path) for path in sources):
        return None
    candidates = [folder, os.path.join(folder, "include"),
                  os.path.join(os.path.dirname(folder), "include"),
                  os.path.join(os.path.dirname(folder), "include", "llhttp"), DEBIAN_INCLUDE]
    for inc in candidates:
        if os.path.isfile(os.path.join(inc, "llhttp.h")):
            return LLHTTP([inc], sources=sources)
    return None


def _from_prefix(prefix):
    inc = os.path.join(prefix, "include")
    if not os.path.isfile(os.path.join(inc, "llhttp.h")):
        return None
    for libdir in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu")):
        full = os.path.join(prefix, libdir)
        static = os.path.join(full, "libllhttp.a")
        if os.path.isfile(static):  # SPEC 1: prefer static linking, so wheels need nothing at run time
            return LLHTTP([inc], objects=[static])
        if any(name.startswith("libllhttp.so") for name in _listdir(full)):
            return LLHTTP([inc], libraries=["llhttp"], library_dirs=[full])
    return None


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _from_pkg_config():
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", "libllhttp"], capture_output=True,
                                text=True, check=True).stdout
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "libllhttp"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    incs = [flag[2:] for flag in shlex.split(cflags) if flag.startswith("-I")]
    static = os.path.join(libdir, "libllhttp.a")
    if os.path.isfile(static):
        return LLHTTP(incs, objects=[static])
    return LLHTTP(incs, libraries=["llhttp"], library_dirs=[libdir] if libdir else [])


def find_llhttp():
    if os.environ.get("LLHTTP_PREFIX"):
        found = _from_prefix(os.environ["LLHTTP_PREFIX"])
        if found:
            return found
        sys.exit("aiowsgi: LLHTTP_PREFIX=%s has no include/llhttp.h with lib/libllhttp"
                 % os.environ["LLHTTP_PREFIX"])
    if os.environ.get("LLHTTP_SRC"):
        found = _from_sources(os.environ["LLHTTP_SRC"])
        if found:
            return found
        sys.exit("aiowsgi: LLHTTP_SRC=%s lacks llhttp's api.c, http.c, llhttp.c or llhttp.h"
                 % os.environ["LLHTTP_SRC"])
    return _from_pkg_config() or _from_sources(DEBIAN_SRC)


class BuildExt(build_ext):
    """Compile llhttp's sources (when built from source) with their own flags, then the core."""

    def build_extension(self, ext):
        if not sys.platform.startswith("linux"):
            sys.exit("aiowsgi: only Linux (epoll) is supported for now; %s is not" % sys.platform)
        llhttp = find_llhttp()
        if llhttp is None:
            sys.exit(MISSING_LLHTTP)
        ext.include_dirs = llhttp.include_dirs + ext.include_dirs
        ext.libraries += llhttp.libraries
        ext.library_dirs += llhttp.library_dirs
        ext.extra_objects += llhttp.objects
        if llhttp.sources:
            # Strict mode rejects, among others, whitespace before a header colon (RFC 9112 5.1).
            objects = self.compiler.compile(
                llhttp.sources, output_dir=os.path.join(self.build_temp, "llhttp"),
                macros=[("LLHTTP_STRICT_MODE", "1")], include_dirs=llhttp.include_dirs,
                extra_postargs=["-O3", "-w", "-fvisibility=hidden"], debug=self.debug)
            ext.extra_objects += objects
        super().build_extension(ext)


def extra_compile_args():
    args = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
            "-fvisibility=hidden"]
    if os.environ.get("AIOWSGI_WERROR") == "1":
        args.append("-Werror")
    args += shlex.split(os.environ.get("AIOWSGI_CFLAGS", ""))
    return args


CSOURCES = sorted(os.path.join("csrc", name) for name in os.listdir("csrc")
                  if name.endswith(".c"))

setup(
    ext_modules=[Extension(
        "aiowsgi._core",
        sources=CSOURCES,
        depends=[os.path.join("csrc", n) for n in os.listdir("csrc") if n.endswith(".h")],
        extra_compile_args=extra_compile_args(),
        extra_link_args=shlex.split(os.environ.get("AIOWSGI_LDFLAGS", "")),
    )],
    cmdclass={"build_ext": BuildExt},
)
