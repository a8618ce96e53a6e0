"""numba's on-disk cache, keyed per module on the sources its machine code can contain.

numba checks only the caller's own source file before it loads cached machine code, but a
cached function contains the machine code of everything it calls: helpers inlined at
numba's IR level, callees linked in and inlined by LLVM, and the struct-field constants
of structs.py frozen in as immediates.  A helper edited in one module would otherwise
leave stale code cached for every module that calls it.

So each module that holds jitted code gets its own cache directory, named after the
module and a digest of its source and of the sources of every emulator module it imports,
directly or through others (its import closure).  Jitted code can reach only what its
module imports, so an edit changes the directory of exactly the modules that could have
inlined or linked the edited code, and nothing stale survives it; modules that cannot
reach the edit keep their cache (an edit of run/loop.py recompiles the worker loop, not
SLUB).  numba's own source stamp (mtime and size) is replaced by that digest, so a fresh
clone of the same sources reuses an existing cache.

The pure-Python layers in `emulator.NOT_JITTED` are in no key;
tests/emulator/test_numba_cache_key.py checks that no keyed module imports one of them.
The base directory is $NUMBA_CACHE_DIR when the user sets it, else
$XDG_CACHE_HOME/slabemu/numba (~/.cache/slabemu/numba).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT.name  # "emulator"


def _module_path(parts: list[str], root: Path = ROOT) -> str | None:
    """Package-relative path of the module or package `parts` names, if it exists."""
    base = root.joinpath(*parts)
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py").relative_to(root).as_posix()
    if (base / "__init__.py").exists():
        return (base / "__init__.py").relative_to(root).as_posix()
    return None


# Import statements, found by pattern rather than by parsing (ast.parse of every module
# costs more than the rest of a warm start).  A match inside a string only adds a
# dependency: more recompiles, never stale code.  tests/emulator/test_numba_cache_key.py
# checks these against an ast walk.
_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n#;]+)", re.M)


def _names(clause: str) -> list[str]:
    return [n.split()[0] for n in clause.strip("() \t\n").replace("\n", " ").split(",")
            if n.strip() and not n.strip().startswith("#")]


def imports_of(rel: str, source: str | None = None, root: Path = ROOT) -> set[str]:
    """Package-relative paths of the emulator modules that module `rel` imports, at any
    depth of its code (function-level imports included), each package on the way too."""
    here = Path(rel).parts[:-1]
    text = source if source is not None else (root / rel).read_text()
    out: set[str] = set()
    for dots, module, clause in _FROM.findall(text):
        mod = module.split(".") if module else []
        if dots:
            pkg = list(here[:len(here) - len(dots) + 1])
        elif mod and mod[0] == PACKAGE:
            pkg, mod = [], mod[1:]
        else:
            continue
        for i in range(len(mod) + 1):  # the packages on the way, then the module
            target = _module_path(pkg + mod[:i], root)
            if target:
                out.add(target)
        for name in _names(clause):  # `from . import slab as SLAB`
            sub = _module_path(pkg + mod + [name], root)
            if sub:
                out.add(sub)
    for clause in _IMPORT.findall(text):
        for name in _names(clause):
            parts = name.split(".")
            if parts[0] == PACKAGE:
                for i in range(1, len(parts) + 1):
                    target = _module_path(parts[1:i], root)
                    if target:
                        out.add(target)
    out.discard(rel)
    return out


def module_keys(root: Path | None = None) -> dict[str, str]:
    """Module name (`emulator.kernel.slub`) -> digest of its import closure's sources,
    for every module outside NOT_JITTED (of the package at `root`; by default this one,
    read once per process)."""
    return _keys(ROOT) if root is None else _keys.__wrapped__(root)


@lru_cache(maxsize=1)
def _keys(root: Path) -> dict[str, str]:
    from . import NOT_JITTED

    sources = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.py"))}
    graph = {rel: imports_of(rel, src.decode(), root) for rel, src in sources.items()}
    keys = {}
    for rel in sources:
        if rel in NOT_JITTED:
            continue
        seen, todo = {rel}, [rel]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen and dep not in NOT_JITTED:
                    seen.add(dep)
                    todo.append(dep)
        h = hashlib.sha256()
        for dep in sorted(seen):
            h.update(dep.encode() + b"\0" + sources[dep] + b"\0")
        keys[module_name(rel)] = h.hexdigest()[:16]
    return keys


def module_name(rel: str) -> str:
    parts = Path(rel).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE,) + parts)


def cache_base() -> Path:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "slabemu" / "numba"


def cache_dir(module: str) -> Path | None:
    """Where the machine code of `module`'s jitted functions is cached (None: not keyed)."""
    key = module_keys().get(module)
    return None if key is None else cache_base() / f"{module}-{key}"


def install() -> None:
    """Put the module-keyed locator first in numba's list of cache locators."""
    from numba.core import caching

    class ModuleKeyedLocator(caching._CacheLocator):
        """numba cache locator for the emulator's jitted modules (see the module doc)."""

        def __init__(self, py_func, path: Path, key: str):
            self._path = str(path)
            self._key = key
            self._lineno = py_func.__code__.co_firstlineno

        def ensure_cache_path(self):
            os.makedirs(self._path, exist_ok=True)
            tempfile.TemporaryFile(dir=self._path).close()  # fail early if not writable

        def get_cache_path(self):
            return self._path

        def get_source_stamp(self):
            return self._key

        def get_disambiguator(self):
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func, py_file):
            module = getattr(py_func, "__module__", None) or ""
            key = module_keys().get(module)
            if key is None:
                return None
            return cls(py_func, cache_base() / f"{module}-{key}", key)

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locators = impl._locator_classes
    if not any(c.__name__ == "ModuleKeyedLocator" for c in locators):
        locators.insert(0, ModuleKeyedLocator)
