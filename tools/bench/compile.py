#!/usr/bin/env python3
"""How long the user waits for the model: cold compiles, an edit's recompile, a warm start.

Each measurement runs in a fresh interpreter against its own numba cache directory
(NUMBA_CACHE_DIR, see emulator/cachekey.py), with the CPUs this process may use:

  run    cold compile of what `slabemu run` / ./tools/run needs: the worker loop, the
         workload generator and the kernel under them (`warm_up(allocators=("slub",))`);
  tests  cold compile of what ./tools/test compiles first (`warm_up(scripted=True)`);
  edit   the recompile after an edit of each module in --edits (default run/loop.py and
         kernel/slub.py): the cache directories whose key the edit moves are removed
         from a warm cache, then `run` again;
  warm   a warm start, interpreter start to the model ready for its first op, median of 3.

Wall and CPU seconds (children included: the cold compile forks, run/warmup.py) are
printed against the targets: cold `run` <= 60 s on a 2-core machine, warm <= 1 s.

    ./.venv/bin/python tools/bench/compile.py [--json] [--jobs N] [--skip-tests]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "bench"))

from benchlib import host_info  # noqa: E402

WARM_RUN = "from emulator.run.warmup import warm_up; warm_up(allocators=('slub',), quiet=True{jobs})"
WARM_TESTS = "from emulator.run.warmup import warm_up; warm_up(scripted=True, quiet=True{jobs})"
TARGETS = {"run_cold_wall_s": 60.0, "warm_wall_s": 1.0}


def _once(code: str, cache_dir: Path, jobs: int | None) -> tuple[float, float]:
    """(wall, cpu) seconds of `code` in a fresh interpreter, children included.  The wall
    time runs from the spawn to the child's "ready" line, printed right after `code`
    (the model has then run its first ops), so interpreter shutdown is not in it."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    code = code.format(jobs="" if jobs is None else f", jobs={jobs}") + "; print('ready', flush=True)"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    wall = time.monotonic() - t0
    proc.stdout.read()
    if proc.wait() != 0 or line.strip() != "ready":
        raise SystemExit(f"compile.py: the measured command failed (exit {proc.returncode})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _moved_by_edit(rel: str) -> list[str]:
    """The modules whose cache key an edit of `rel` (package-relative) moves."""
    from emulator import cachekey

    with tempfile.TemporaryDirectory(prefix="slabemu-bench-") as d:
        root = Path(d) / "emulator"
        shutil.copytree(cachekey.ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
        before = cachekey.module_keys(root)
        with open(root / rel, "a") as f:
            f.write("\n# an edit\n")
        after = cachekey.module_keys(root)
    return sorted(m for m in before if before[m] != after[m])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--jobs", type=int, default=None,
                    help="compile processes (default: the CPUs this process may use)")
    ap.add_argument("--skip-tests", action="store_true", help="skip the `tests` compile")
    ap.add_argument("--edits", default="run/loop.py,kernel/slub.py",
                    help="modules (relative to emulator/) whose edit is timed")
    args = ap.parse_args()
    if args.jobs is not None and args.jobs < 1:
        ap.error("--jobs takes a whole number of at least 1")
    from emulator import cachekey

    res: dict = {"host": host_info(), "jobs": args.jobs or len(os.sched_getaffinity(0)),
                 "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="slabemu-numba-") as d:
        cache = Path(d) / "run"
        res["run_cold_wall_s"], res["run_cold_cpu_s"] = _once(WARM_RUN, cache, args.jobs)
        warm = [_once(WARM_RUN, cache, args.jobs) for _ in range(3)]
        res["warm_wall_s"] = statistics.median(w for w, _ in warm)
        res["warm_cpu_s"] = statistics.median(c for _, c in warm)
        res["edits"] = {}
        for rel in [e for e in args.edits.split(",") if e]:
            moved = _moved_by_edit(rel)
            for module in moved:
                for path in cache.glob(f"{module}-*"):
                    shutil.rmtree(path)
            wall, cpu = _once(WARM_RUN, cache, args.jobs)
            res["edits"][rel] = {"modules_recompiled": len(moved),
                                 "of_modules": len(cachekey.module_keys()),
                                 "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        if not args.skip_tests:
            res["tests_cold_wall_s"], res["tests_cold_cpu_s"] = _once(
                WARM_TESTS, Path(d) / "tests", args.jobs)
    for key, value in list(res.items()):
        if isinstance(value, float):
            res[key] = round(value, 2 if value < 10 else 1)
    if args.json:
        print(json.dumps(res))
        return 0
    met = {k: res[k] <= t for k, t in TARGETS.items()}
    print(f"{res['host']['cpu_model']}, {res['jobs']} compile process(es)")
    print(f"cold compile, what a run needs:   {res['run_cold_wall_s']:6.1f} s wall "
          f"{res['run_cold_cpu_s']:6.1f} s CPU  (target <= 60 s: "
          f"{'met' if met['run_cold_wall_s'] else 'NOT met'})")
    if "tests_cold_wall_s" in res:
        print(f"cold compile, what the tests need: {res['tests_cold_wall_s']:6.1f} s wall "
              f"{res['tests_cold_cpu_s']:6.1f} s CPU")
    for rel, e in res["edits"].items():
        print(f"after an edit of {rel:16s}   {e['wall_s']:6.1f} s wall "
              f"{e['cpu_s']:6.1f} s CPU  ({e['modules_recompiled']} of {e['of_modules']} "
              "modules recompiled)")
    print(f"warm start to the first op:        {res['warm_wall_s']:6.2f} s wall "
          f"{res['warm_cpu_s']:6.2f} s CPU  (target <= 1 s: "
          f"{'met' if met['warm_wall_s'] else 'NOT met'}; median of 3, interpreter "
          "start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
