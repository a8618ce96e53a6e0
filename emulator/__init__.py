"""slabemu's emulator: the emulated machine, kernel, workloads, runner and reports.

Importing this package points numba's on-disk cache at a directory keyed by a hash of
the package's own sources.  numba's cache only checks the *caller's* source file, so a
jitted helper edited in one module would otherwise leave stale machine code cached for
every module that inlines it (and struct-field constants are frozen into callers at
compile time).  Keying the whole cache on the package contents makes any edit start a
fresh cache.  A user-set NUMBA_CACHE_DIR is respected.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"


def _sources_digest() -> str:
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _set_numba_cache_dir() -> None:
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "slabemu"
    os.environ["NUMBA_CACHE_DIR"] = str(base / f"numba-{_sources_digest()}")


_set_numba_cache_dir()
