"""What the benchmarks share: the import prologue, the host description, the small
machine they run on, result rows, building and running a C twin, and main()'s tail.

tools/bench/*.py import it first (their own directory is on sys.path): it puts the
repository root on sys.path and imports `emulator`, which sets numba's cache directory
before anything imports numba.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import emulator  # noqa: E402,F401  (sets numba's cache directory before numba is imported)
import psutil  # noqa: E402

from topo.model import Cpu, Node, Topology  # noqa: E402


def host_info() -> dict:
    """The CPU model, CPU counts, architecture and versions a result was measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),  # < logical: SMT siblings
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numba": __import__("numba").__version__,
    }


def small_topology(node_mib=(8, 4), cpus_per_node=2) -> Topology:
    """As tests/emulator/conftest.py's small_topology: node k has node_mib[k] MiB."""
    n = len(node_mib)
    distances = tuple(tuple(10 if i == j else 20 for j in range(n)) for i in range(n))
    nodes, cpus = [], []
    for k, mib in enumerate(node_mib):
        ids = tuple(range(k * cpus_per_node, (k + 1) * cpus_per_node))
        nodes.append(Node(k, ids, mib << 20))
        cpus += [Cpu(c, k, k, c, 0) for c in ids]
    arch = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
    return Topology(name="bench", arch=arch, page_size=4096, cache_line=64,
                    nodes=tuple(nodes), distances=distances, cpus=tuple(cpus))


def row(labels: dict, name: str, per_op: list[float], iters: int, **extra) -> dict:
    """One result row: the median and minimum ns per operation over the repetitions."""
    r = {"name": name, "label": labels[name], "iters": iters,
         "median_ns": statistics.median(per_op), "min_ns": min(per_op), "reps": len(per_op)}
    r.update(extra)
    return r


def build_c(source: Path, tmp: str) -> tuple[str | None, str]:
    """Compile a C twin with the system cc -O2 into tmp: (path, "") or (None, why not)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None, "no cc"
    exe = os.path.join(tmp, "bench_" + source.stem)
    try:
        p = subprocess.run([cc, "-O2", "-std=c11", "-o", exe, str(source)],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"cc failed: {e}"
    if p.returncode != 0:
        return None, "cc failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return exe, ""


def run_c(exe: str, mode: str, iters: int, reps: int) -> tuple[list[float] | None, str]:
    """Run `exe MODE ITERS REPS` (it prints the elapsed ns of each rep): the ns per
    operation of each rep, or (None, why)."""
    try:
        p = subprocess.run([exe, mode, str(iters), str(reps)], capture_output=True, text=True,
                           timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        return None, str(e)
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    try:
        per_op = [int(x) / iters for x in p.stdout.split()]
    except ValueError:
        return None, "bad output"
    return (per_op, "") if len(per_op) == reps else (None, "bad output")


def progress_log(as_json: bool) -> Callable[[str], None]:
    """Progress lines on stderr, none with --json."""
    def log(msg: str) -> None:
        if not as_json:
            print(msg, file=sys.stderr, flush=True)
    return log


def run_and_report(run: Callable[[], dict], as_json: bool,
                   print_table: Callable[[dict], None]) -> int:
    """main()'s tail: run the benchmark (timed), print its results as JSON or as a table,
    and warn about shared memory left behind.  Returns the exit status."""
    from emulator.machine.arena import leftover_segments

    # SIGTERM/SIGHUP: unwind through the benchmark's `with` blocks (the arena's own hooks
    # do the same once an arena exists; this covers the moments before).
    def _term(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _term)
    t = time.monotonic()
    try:
        out = run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    out["elapsed_s"] = round(time.monotonic() - t, 2)
    if as_json:
        print(json.dumps(out, indent=1))
    else:
        print_table(out)
        print(f"\n(run took {out['elapsed_s']:.1f} s)")
    left = [n for n in leftover_segments() if n.startswith(f"slabemu-{os.getpid()}-")]
    if left:
        print(f"warning: shared memory left behind: {left}", file=sys.stderr)
    return 0
