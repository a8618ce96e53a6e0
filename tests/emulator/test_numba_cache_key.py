"""numba's cache is keyed per module on every module its jitted code can reach
(emulator/cachekey.py).

A module left out of the keys (NOT_JITTED) must hold no jitted code and must not be
imported by any module in a key: otherwise editing it would leave stale machine code in
the cache.  An edit must move the key of every module that imports the edited one,
directly or not, and of no other (the parser below is the oracle for cachekey's scan).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import emulator
from emulator import cachekey

ROOT = Path(emulator.__file__).resolve().parent


# Module paths resolve as cachekey resolves them; what this file checks independently is
# which imports there are (an ast walk against cachekey's pattern scan).
_module_path = cachekey._module_path


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


# -- the per-module key (emulator/cachekey.py) ----------------------------------------------
def _closure(graph: dict[str, set[str]], rel: str) -> set[str]:
    seen, todo = {rel}, [rel]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen and dep not in emulator.NOT_JITTED:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_pattern_scan_finds_every_import_the_parser_finds():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        missing = _imports(path) - cachekey.imports_of(rel)
        assert not missing, f"{rel}: the key misses {missing}"


def test_every_module_with_jitted_code_is_keyed():
    keys = cachekey.module_keys()
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        if "@njit" in text or "@intrinsic" in text:
            assert cachekey.module_name(path.relative_to(ROOT).as_posix()) in keys, path


@pytest.mark.parametrize("edited", ["kernel/slub.py", "machine/structs.py", "run/loop.py",
                                    "kernel/kasan.py"])
def test_an_edit_moves_exactly_the_keys_of_the_modules_that_can_reach_it(tmp_path, edited):
    root = tmp_path / "emulator"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = cachekey.module_keys(root)
    with open(root / edited, "a") as f:
        f.write("\n# an edit\n")
    after = cachekey.module_keys(root)
    changed = {m for m in before if before[m] != after[m]}
    graph = {p.relative_to(ROOT).as_posix(): _imports(p) for p in ROOT.rglob("*.py")}
    reach = {cachekey.module_name(rel) for rel in graph
             if rel not in emulator.NOT_JITTED and edited in _closure(graph, rel)}
    assert changed == reach
    assert cachekey.module_name(edited) in changed
    if edited == "machine/structs.py":  # every struct constant is frozen into its users
        assert changed >= {"emulator.kernel.slub", "emulator.kernel.slab", "emulator.run.loop"}
    if edited == "run/loop.py":  # the worker loop: SLUB and SLAB keep their cache
        assert "emulator.kernel.slub" not in changed and "emulator.kernel.ops" not in changed


def test_an_edit_of_an_unkeyed_module_moves_no_key(tmp_path):
    root = tmp_path / "emulator"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = cachekey.module_keys(root)
    with open(root / "run" / "runner.py", "a") as f:
        f.write("\n# an edit\n")
    assert cachekey.module_keys(root) == before


def test_jitted_functions_cache_under_their_module_key():
    from emulator.kernel import slub

    cache = slub.deactivate_slab._cache
    assert cache._cache_path == str(cachekey.cache_dir("emulator.kernel.slub"))
    assert cache._impl.locator.get_source_stamp() == cachekey.module_keys()["emulator.kernel.slub"]
