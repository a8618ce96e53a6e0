"""slabemu's emulator: the emulated machine, kernel, workloads, runner and reports.

Importing this package points numba's on-disk cache at a directory keyed by a hash of
the package's own sources.  numba's cache only checks the *caller's* source file, so a
jitted helper edited in one module would otherwise leave stale machine code cached for
every module that inlines it (and struct-field constants are frozen into callers at
compile time).  Keying the cache on the sources of every module jitted code can reach
makes any such edit start a fresh cache.  The pure-Python layers listed in `NOT_JITTED`
(the command line, the runner's parent side, reports, config loaders) are left out of
the key, so editing them costs no recompile; tests/emulator/test_numba_cache_key.py
checks that no module jitted code can reach imports one of them.  A user-set
NUMBA_CACHE_DIR is respected.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"


# Modules (paths relative to this package) that hold no jitted code and that no module
# holding jitted code imports.
NOT_JITTED = frozenset({
    "cli.py", "report/__init__.py", "report/slabinfo.py", "report/lockstat.py",
    "report/kasan.py", "report/leaks.py", "report/summary.py", "report/results.py",
    "report/compare.py", "__init__.py",
    "run/runner.py", "run/collect.py", "run/warmup.py", "workload/__init__.py",
    "workload/scenario.py", "kernel/policy.py", "kernel/check.py", "kernel/boot.py",
})


def _sources_digest() -> str:
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).as_posix() in NOT_JITTED:
            continue
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _set_numba_cache_dir() -> None:
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "slabemu"
    os.environ["NUMBA_CACHE_DIR"] = str(base / f"numba-{_sources_digest()}")


_set_numba_cache_dir()
