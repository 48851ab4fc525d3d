"""The package's layout: no module over 600 lines, and no import circle between its modules.

The import graph is built from the source with ``ast``: an edge for every
import a module runs when it is imported (module level, ``if``/``try``
blocks included, ``if TYPE_CHECKING:`` blocks and imports inside functions
left out), to the module imported and to every package above it that the
importing module is not itself inside of (importing ``a.b.c`` runs
``a/__init__`` and ``a/b/__init__`` first).  ``from p import name`` also
reaches ``p.name`` when that is a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1] / "python"
PACKAGE = ROOT / "freqrex"
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: Dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def executed_imports(body: List[ast.stmt]) -> Iterator[ast.stmt]:
    """The import statements run when the module is imported."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name != "TYPE_CHECKING":
                yield from executed_imports(node.body)
            yield from executed_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from executed_imports(block)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            yield from executed_imports(node.body)


def imports_of(name: str) -> Set[str]:
    """The package's modules that importing ``name`` imports directly."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    package = name if is_package(name) else name.rpartition(".")[0]
    targets: Set[str] = set()
    for node in executed_imports(tree.body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        targets.add(source)
        targets.update(f"{source}.{alias.name}" for alias in node.names)
    edges: Set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            reached = ".".join(parts[:i])
            inside = name == reached or name.startswith(reached + ".")
            if reached in MODULES and not inside:
                edges.add(reached)
    return edges


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (or a module importing itself)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_is_over_600_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_module_level_import_graph_has_no_circle():
    graph = {name: imports_of(name) for name in MODULES}
    assert sum(len(e) for e in graph.values()) > len(MODULES)  # the graph is not empty by mistake
    assert graph["freqrex.evaluation.summary"] >= {"freqrex.viz.html", "freqrex.evaluation.protocol"}
    assert circles(graph) == []


def test_the_circle_finder_finds_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"a"}, "b": set()}) == [["a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


#: Run in a fresh interpreter: preload the third-party libraries (not freqrex), then fork once per
#: module, so each child imports one freqrex module first, with nothing of freqrex loaded before it.
FORK_EACH = """
import compileall, importlib, json, os, sys
import numpy, scipy.signal, soundfile  # third-party: shared by the children, not part of the check
compileall.compile_dir(sys.argv[2], quiet=1)  # once, into PYTHONPYCACHEPREFIX, for every child
OPTIONAL = ("torch", "onnxruntime", "matplotlib", "jinja2", "ray", "transformers", "tensorflow", "art")
failed = {}
for name in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            message = ""
        except ModuleNotFoundError as exc:
            message = "" if (exc.name or "").split(".")[0] in OPTIONAL else repr(exc)
        except BaseException as exc:
            message = repr(exc)
        os.write(w, message.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    if message:
        failed[name] = message
print(json.dumps(failed))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_every_module_imports_first_in_a_fresh_interpreter(tmp_path):
    """Imported first, each module finds everything it needs (no import that works only in one order)."""
    import json
    import os

    names = sorted(n for n in MODULES if not n.endswith("__main__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path)  # compiled files go there, never beside the sources
    out = subprocess.run([sys.executable, "-c", FORK_EACH, json.dumps(names), str(PACKAGE)], capture_output=True,
                         text=True, check=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}
