"""The C core's shape, as STYLE.md and issue 12 hold it: the event loop, the HTTP parser and the
other pure-C layers build without Python; no function runs past 70 lines; every file says at
its top what it owns and what it must not do.
"""

import os
import re
import shlex
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
PURE_C = ("loop.c", "parser.c", "pool.c", "trust.c", "body.c", "output.c", "http.c", "mime.c",
          "filecache.c", "static.c")
MAX_FUNCTION_LINES = 70


def sources(pattern=r".*\.c$"):
    return sorted(name for name in os.listdir(CSRC) if re.match(pattern, name))


def llhttp_include():
    """Where llhttp.h is, the way setup.py looks for it."""
    candidates = []
    if os.environ.get("LLHTTP_PREFIX"):
        candidates.append(os.path.join(os.environ["LLHTTP_PREFIX"], "include"))
    if os.environ.get("LLHTTP_SRC"):
        src = os.environ["LLHTTP_SRC"]
        candidates += [src, os.path.join(src, "include"), os.path.join(src, "..", "include")]
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "libllhttp"], capture_output=True,
                               text=True, check=True).stdout
        candidates += [f[2:] for f in shlex.split(flags) if f.startswith("-I")]
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates += ["/usr/share/include/llhttp", "/usr/include", "/usr/local/include"]
    for path in candidates:
        if os.path.isfile(os.path.join(path, "llhttp.h")):
            return path
    pytest.fail("llhttp.h not found (the extension could not have been built either)")


@pytest.mark.parametrize("name", PURE_C)
def test_pure_c_layers_compile_without_python_headers(name):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "no C compiler"
    # No Python include directory is given, so an #include of Python.h anywhere in the chain
    # fails to compile; -MM lists every header the file reaches, to name the culprit.
    cmd = [cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", llhttp_include(), "-MM",
           os.path.join(CSRC, name)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Python.h" not in result.stdout and "compat.h" not in result.stdout, result.stdout


def function_lengths(path):
    """(signature, lines) of every function defined in a C file: from its first line at column
    0 to the closing brace at column 0."""
    lines = open(path, encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        if line != "{":
            continue
        start = i - 1
        while start > 0 and not re.match(r"[A-Za-z_]", lines[start]):
            start -= 1  # a signature broken over several lines
        end = lines.index("}", i)
        yield lines[start].strip(), end - start + 1


FUZZ_TARGETS = sorted("fuzz/" + n for n in os.listdir(os.path.join(CSRC, "fuzz"))
                      if n.endswith(".c"))


@pytest.mark.parametrize("name", sources() + FUZZ_TARGETS)
def test_no_function_is_longer_than_70_lines(name):
    long = [(sig, n) for sig, n in function_lengths(os.path.join(CSRC, name))
            if n > MAX_FUNCTION_LINES]
    assert not long, "functions over %d lines in %s: %s" % (MAX_FUNCTION_LINES, name, long)


@pytest.mark.parametrize("name", sources(r".*\.[ch]$"))
def test_every_file_says_what_it_owns_and_what_it_must_not_do(name):
    text = open(os.path.join(CSRC, name), encoding="utf-8").read()
    head = text[:text.index("*/")] if text.startswith("/*") else ""
    assert head, "%s does not open with a comment" % name
    assert head.startswith("/* %s:" % name), "%s's opening comment does not name it" % name
    if name.endswith(".c"):
        assert "Owns:" in head and re.search(r"Must not|must not", head), \
            "%s's opening comment does not say what it owns and must not do" % name


def test_the_function_length_check_sees_long_functions(tmp_path):
    body = "\n".join("    x++;" for _ in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.c"
    path.write_text("static int\nf(int x)\n{\n%s\n    return x;\n}\n" % body)
    (sig, n), = function_lengths(str(path))
    assert sig == "f(int x)" and n > MAX_FUNCTION_LINES
