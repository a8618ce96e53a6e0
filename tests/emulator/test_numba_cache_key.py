"""numba's cache is keyed on every module jitted code can reach (emulator/__init__.py).

A module left out of the key (NOT_JITTED) must hold no jitted code and must not be
imported by any module in the key: otherwise editing it would leave stale machine code
in the cache.
"""

from __future__ import annotations

import ast
from pathlib import Path

import emulator

ROOT = Path(emulator.__file__).resolve().parent


def _module_path(parts: list[str]) -> str | None:
    base = ROOT.joinpath(*parts)
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py").relative_to(ROOT).as_posix()
    if (base / "__init__.py").exists():
        return (base / "__init__.py").relative_to(ROOT).as_posix()
    return None


def _imports(path: Path) -> set[str]:
    """Package-relative paths of the emulator modules `path` imports names from."""
    rel = path.relative_to(ROOT).parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = list(rel[:len(rel) - node.level + 1])
            elif node.module and node.module.startswith("emulator"):
                pkg = []
                node = ast.ImportFrom(module=node.module.split(".", 1)[1] if "." in node.module else None,
                                      names=node.names, level=1)
            else:
                continue
            mod = node.module.split(".") if node.module else []
            target = _module_path(pkg + mod)
            if target:
                out.add(target)
            for alias in node.names:  # `from . import slab as SLAB`
                sub = _module_path(pkg + mod + [alias.name])
                if sub:
                    out.add(sub)
    return out


def test_not_jitted_modules_hold_no_jitted_code():
    for rel in emulator.NOT_JITTED:
        path = ROOT / rel
        if path.exists():
            text = path.read_text()
            assert "@njit" not in text and "@intrinsic" not in text, rel


def test_no_keyed_module_imports_an_unkeyed_one():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in emulator.NOT_JITTED or rel == "__init__.py":
            continue
        for target in _imports(path):
            if target in emulator.NOT_JITTED and not target.endswith("__init__.py"):
                bad.append(f"{rel} imports {target}")
    assert not bad, bad
