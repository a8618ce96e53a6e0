"""What the benchmarks share: the host description, the small machine they run on,
result rows, and building and running a C twin.

Imported by tools/bench/*.py after they put the repository root on sys.path.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
from pathlib import Path

import psutil

from topo.model import Cpu, Node, Topology


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
