#!/usr/bin/env python3
"""How long the user waits for the kernel model: a cold numba compile and a warm start.

Runs `emulator.run.warmup.warm_kernel()` (boot a SLUB and a SLAB machine, one op of every
kind) in a fresh interpreter pinned to one host CPU, first with an empty numba cache
directory (the cold compile of the whole model), then again with that cache (a warm
start: the time to the first emulated ops).  Prints both, against the targets of
docs/design.md §13: cold under 30 s on one core, warm under 2 s.

    ./.venv/bin/python tools/bench/compile.py [--json]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _once(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    cpu = sorted(os.sched_getaffinity(0))[0]
    cmd = [sys.executable, "-c",
           f"import os; os.sched_setaffinity(0, {{{cpu}}}); "
           "from emulator.run.warmup import warm_kernel; warm_kernel()"]
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return time.monotonic() - t0


def main() -> int:
    as_json = "--json" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="slabemu-numba-") as d:
        cold = _once(d)
        warm = [_once(d) for _ in range(3)]
    warm_med = sorted(warm)[1]
    res = {"host": platform.processor() or platform.machine(), "cold_s": round(cold, 1),
           "warm_s": round(warm_med, 2), "cold_target_s": 30, "warm_target_s": 2}
    if as_json:
        print(json.dumps(res))
        return 0
    print(f"cold compile of the kernel model (one core): {cold:6.1f} s  "
          f"(target < 30 s: {'met' if cold < 30 else 'NOT met'})")
    print(f"warm start, median of 3 (one core):          {warm_med:6.2f} s  "
          f"(target < 2 s: {'met' if warm_med < 2 else 'NOT met'})")
    print("both include interpreter start-up, imports and booting two small machines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
