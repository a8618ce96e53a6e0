"""No jitted function may reach itself through calls: numba's on-disk cache cannot load
(mutually) recursive functions (a cached caller jumps through an unresolved, null
pointer).  This builds the call graph of every @njit function in the package from the
source and checks that it is acyclic."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "emulator"


def _jitted_functions():
    funcs: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            jitted = any(
                (isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", "")) == "njit")
                or getattr(d, "id", "") == "njit"
                for d in node.decorator_list)
            if not jitted:
                continue
            calls = set()
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call):
                    f = sub.func
                    if isinstance(f, ast.Name):
                        calls.add(f.id)
                    elif isinstance(f, ast.Attribute):
                        calls.add(f.attr)
            funcs[node.name] = calls
    return funcs


def test_the_jitted_call_graph_is_acyclic():
    funcs = _jitted_functions()
    assert len(funcs) > 50  # the walk found the kernel model
    graph = {name: {c for c in calls if c in funcs} for name, calls in funcs.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(n, path):
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycle.extend(path + [n, m])
                return True
            if state.get(m) is None and visit(m, path + [n]):
                return True
        state[n] = 2
        return False

    for name in sorted(graph):
        if state.get(name) is None and visit(name, []):
            break
    assert not cycle, " -> ".join(cycle)
