"""aiowsgi's modules import one another without a cycle (SPEC layout: master forks, worker runs).

The graph is read from the source, not from an import: every ``import`` statement counts, at
module level, inside functions and under ``TYPE_CHECKING``, so a cycle cannot hide behind an
import moved into a function.
"""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Optional, Set

import aiowsgi

PACKAGE = "aiowsgi"
PACKAGE_DIR = os.path.dirname(os.path.abspath(aiowsgi.__file__))


def module_sources(package_dir: str = PACKAGE_DIR) -> Dict[str, str]:
    """{dotted module name: path} for the package's Python files (``aiowsgi`` is __init__)."""
    sources = {}
    for name in sorted(os.listdir(package_dir)):
        if name.endswith(".py"):
            stem = name[:-3]
            dotted = PACKAGE if stem == "__init__" else "%s.%s" % (PACKAGE, stem)
            sources[dotted] = os.path.join(package_dir, name)
    return sources


def imported_modules(module: str, path: str, known: Set[str]) -> Set[str]:
    """The modules of the package that ``module``'s source imports, wherever the statement is."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.module, node.level)
            # "from . import x" imports the submodule x if there is one, else a name of base
            names = ["%s.%s" % (base, alias.name) for alias in node.names]
            submodules = [name for name in names if name in known]
            found.update(submodules if submodules else [base])
    return {name for name in found if name in known and name != module}


def _absolute(module: str, is_package: bool, target: Optional[str], level: int) -> str:
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph(package_dir: str = PACKAGE_DIR) -> Dict[str, Set[str]]:
    sources = module_sources(package_dir)
    known = set(sources) | {PACKAGE + "._core"}  # the extension: imports nothing of ours
    graph = {module: imported_modules(module, path, known) for module, path in sources.items()}
    graph[PACKAGE + "._core"] = set()
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle as a path ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    done: Set[str] = set()
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for successor in sorted(graph[node]):
            cycle = visit(successor)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_master_and_server_reach_the_worker_and_not_each_other_backwards():
    graph = import_graph()
    assert "aiowsgi.worker" in graph["aiowsgi.master"]
    assert {"aiowsgi.master", "aiowsgi.worker"} <= graph["aiowsgi.server"]
    assert not graph["aiowsgi.worker"] & {"aiowsgi.master", "aiowsgi.server", "aiowsgi.cli"}
    assert not graph["aiowsgi.master"] & {"aiowsgi.server", "aiowsgi.cli"}


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("from .a import run\n")
    (package / "a.py").write_text("from . import b\n\ndef run():\n    return b.go()\n")
    (package / "b.py").write_text("def go():\n    from .a import run\n    return run\n")
    (package / "c.py").write_text("import aiowsgi.a\nfrom aiowsgi import b\nfrom . import run\n")
    graph = import_graph(str(package))
    assert graph["aiowsgi.c"] == {"aiowsgi.a", "aiowsgi.b", "aiowsgi"}
    assert find_cycle(graph) == ["aiowsgi.a", "aiowsgi.b", "aiowsgi.a"]
