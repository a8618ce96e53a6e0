#!/usr/bin/env python3
"""Nanoseconds per kmalloc(64) + kfree pair on the emulated SLUB and SLAB fast paths.

    ./.venv/bin/python tools/bench/fastpath.py [--quick] [--json]

Rows (see tools/bench/README.md for what each one means), all on emulated CPU 0 of a
booted Kernel(2 nodes of 8 + 4 MiB, 2 CPUs each, lock_stats=False), cache kmalloc-64:
  slub_direct[_kasan]   the fast paths op_step runs, kernel/fastpath.py's
                        kmalloc_fastpath + kfree_fastpath (inlined, compiled without
                        NRT, as in op_step), with the general path after a miss (never
                        taken: checked), in one njit loop; no task row
  slub_ops[_kasan]      op_start/op_step of OP_KMALLOC then OP_FREE (the phase machinery)
  slub_runner           slub_ops plus handle_ipis(k, cpu) before each op_step, as the
                        deterministic runner's _step_cpu does (diagnostic)
  slub_flat             the SLUB pair hand-inlined into an ordinary (NRT) njit loop,
                        every table read as k.table[...] (diagnostic)
  slub_flat_hoisted     the same with Mem's tables loaded into locals once, before the
                        loop: the floor for numba code on these tables (diagnostic)
  slab_direct[_kasan]   as slub_direct, freeing with SLAB's __cache_free
  slab_ops[_kasan]      as slub_ops on SLAB
  py_*                  slub/slab direct and ops in pure Python (NUMBA_DISABLE_JIT=1, a
                        subprocess)
  c_*                   the C twin (c/fastpath.c, cc -O2): slub, slab, with and without
                        KASAN, and slub_nrt_model (the emulator's call structure with an
                        out-of-line atomic incref/decref per call, diagnostic)

Methodology as tools/bench/primitives.py: every loop runs inside one jitted function,
timed there with monotonic_ns; everything is compiled and warmed up (the cpu slab or
array cache filled) before timing; each row is measured R times and the table shows the
median and the minimum of elapsed / pairs; timed rows run pinned to one host CPU.  After
every timed loop the allocator's own counters must show that every pair took the fast
path (SLUB ALLOC_FASTPATH/FREE_FASTPATH, SLAB ALLOCHIT/FREEHIT), else the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (build_c, host_info, progress_log, row, run_and_report, run_c,  # first:
                      small_topology)  # the repository root on sys.path, numba cache set

from numba import config as numba_config  # noqa: E402
from numba import njit  # noqa: E402

from emulator.kernel.boot import Kernel  # noqa: E402
from emulator.kernel.ops import (  # noqa: E402
    OP_FREE,
    OP_KMALLOC,
    STEP_DONE,
    handle_ipis,
    kfree_inline,
    kmalloc_node,
    op_start,
    op_step,
)
from emulator.kernel.fastpath import kfree_fastpath, kmalloc_fastpath  # noqa: E402
from emulator.kernel.slab_common import NUMA_NO_NODE  # noqa: E402
from emulator.machine import structs as S  # noqa: E402
from emulator.machine.atomics import monotonic_ns  # noqa: E402

C_SOURCE = Path(__file__).resolve().parent / "c" / "fastpath.c"
SIZE = 64  # kmalloc(64): kmalloc-64 on both allocators
CPU = 0

TARGET_SLUB_NS = 15.0  # the real kernel: 10.5 ns per pair on an i7-4790K
TARGET_PY_SPEEDUP = 200.0
TARGET_C_RATIO = 3.0

FULL = dict(reps=7, iters=2_000_000, ops_iters=1_000_000, c_iters=10_000_000,
            py_iters=20_000, py_reps=3)
QUICK = dict(reps=3, iters=100_000, ops_iters=50_000, c_iters=1_000_000,
             py_iters=2_000, py_reps=1)

LABELS = {
    "slub_direct": "SLUB kmalloc + kfree fast paths",
    "slub_ops": "SLUB via op_start/op_step",
    "slub_runner": "  + handle_ipis per step (runner)",
    "slub_flat": "  SLUB pair hand-inlined, no calls",
    "slub_flat_hoisted": "  the same, tables hoisted out of Mem",
    "slub_direct_kasan": "SLUB direct, kasan on",
    "slub_ops_kasan": "SLUB via ops, kasan on",
    "slab_direct": "SLAB kmalloc + kfree fast paths",
    "slab_ops": "SLAB via op_start/op_step",
    "slab_direct_kasan": "SLAB direct, kasan on",
    "slab_ops_kasan": "SLAB via ops, kasan on",
    "py_slub_direct": "SLUB direct, pure Python",
    "py_slub_ops": "SLUB via ops, pure Python",
    "py_slab_direct": "SLAB direct, pure Python",
    "py_slab_ops": "SLAB via ops, pure Python",
    "c_slub": "C twin: SLUB pair",
    "c_slub_kasan": "C twin: SLUB pair, kasan on",
    "c_slab": "C twin: SLAB pair",
    "c_slab_kasan": "C twin: SLAB pair, kasan on",
    "c_slub_nrt_model": "  C twin, emulator's calls + NRT refcounts",
}


# -- jitted loops -------------------------------------------------------------------
@njit(cache=True, _nrt=False)
def _loop_direct(k, n, cpu, t, size):
    """kmalloc + kfree as op_step runs them, minus the task row: the fast paths
    (kernel/fastpath.py, inlined here as in op_step, compiled without NRT as op_step
    is), and the general path (ops.kmalloc_node, ops.kfree_inline) after a miss, which
    is counted in `bad`."""
    bad = 0
    t0 = monotonic_ns()
    for _ in range(n):
        obj = kmalloc_fastpath(k, size, NUMA_NO_NODE, cpu, -1)
        if obj == 0:
            bad += 1
            obj = kmalloc_node(k, size, NUMA_NO_NODE, cpu, -1)
        if kfree_fastpath(k, obj, -1, 0, cpu) == 0:
            bad += 1
            kfree_inline(k, obj, cpu, t)
    return monotonic_ns() - t0, bad


@njit(cache=True)
def _loop_ops(k, n, cpu, t, size, ipis):
    """op_start + op_step (to STEP_DONE) of OP_KMALLOC, then of OP_FREE."""
    bad = 0
    t0 = monotonic_ns()
    for _ in range(n):
        op_start(k, t, OP_KMALLOC, -1, NUMA_NO_NODE, size, 0)
        while True:
            if ipis:
                handle_ipis(k, cpu)
            if op_step(k, t) == STEP_DONE:
                break
            bad += 1
        obj = k.task[t, S.TASK_RESULT]
        op_start(k, t, OP_FREE, -1, NUMA_NO_NODE, 0, obj)
        while True:
            if ipis:
                handle_ipis(k, cpu)
            if op_step(k, t) == STEP_DONE:
                break
            bad += 1
    return monotonic_ns() - t0, bad


@njit(cache=True)
def _loop_slub_flat(k, n, cpu, size):
    """The SLUB pair with every emulator function inlined by hand: the same loads and
    stores as kmalloc_node -> slab_alloc_node and classify_free -> check_free ->
    slab_free_fast (kasan off, NUMA_NO_NODE), and no calls.  Counts what it cannot do."""
    bad = 0
    t0 = monotonic_ns()
    for _ in range(n):
        # kmalloc_slab (size <= 192) and cache_alloc's allocator switch
        s = k.kmalloc_map[S.KMALLOC_CACHES_AT + k.kmalloc_map[(size - 1) >> 3]]
        if s < 0 or k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] != S.ALLOCATOR_SLUB:
            bad += 1
            break
        # slab_alloc_node's fast path
        c = s * k.machine[0, S.MACHINE_NR_CPUS] + cpu
        tid = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID]
        obj = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST]
        if obj == 0:
            bad += 1
            break
        nxt = k.ram64[(obj + k.kmem_cache[s, S.KMEM_CACHE_OFFSET]) >> 3]
        if k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] != obj or \
                k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID] != tid:
            bad += 1
            break
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] = nxt
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID] = tid + k.machine[0, S.MACHINE_TID_STEP]
        k.kmem_cache_cpu[c, S.CPU_STAT + S.ALLOC_FASTPATH] += 1
        if k.machine[0, S.MACHINE_KASAN] != 0:
            bad += 1
            break
        # classify_free
        if obj <= 16:
            bad += 1
            break
        shift = k.machine[0, S.MACHINE_PAGE_SHIFT]
        pfn = obj >> shift
        if pfn <= 0 or pfn >= k.page.shape[0]:
            bad += 1
            break
        if (k.page[pfn, S.PAGE_FLAGS] & S.PG_TAIL) != 0:
            pfn = k.page[pfn, S.PAGE_COMPOUND_HEAD]
        if (k.page[pfn, S.PAGE_FLAGS] & S.PG_SLAB) == 0:
            bad += 1
            break
        s = k.page[pfn, S.PAGE_SLAB_CACHE]
        # check_free -> object_index -> slab_objects
        off = obj - (pfn << shift) - k.page[pfn, S.PAGE_S_MEM]
        sz = k.kmem_cache[s, S.KMEM_CACHE_SIZE]
        if off < 0 or off % sz != 0:
            bad += 1
            break
        if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
            objects = (k.page[pfn, S.PAGE_FREELIST] >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE
        else:
            objects = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
        if off // sz >= objects:
            bad += 1
            break
        # slab_free_fast
        c = s * k.machine[0, S.MACHINE_NR_CPUS] + cpu
        if k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] != pfn:
            bad += 1
            break
        tid = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID]
        k.ram64[(obj + k.kmem_cache[s, S.KMEM_CACHE_OFFSET]) >> 3] = \
            k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST]
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] = obj
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID] = tid + k.machine[0, S.MACHINE_TID_STEP]
        k.kmem_cache_cpu[c, S.CPU_STAT + S.FREE_FASTPATH] += 1
    return monotonic_ns() - t0, bad


@njit(cache=True)
def _loop_slub_flat_hoisted(k, n, cpu, size):
    """_loop_slub_flat with Mem's tables read into locals once, before the loop."""
    kmap = k.kmalloc_map
    kc = k.kmem_cache
    kcc = k.kmem_cache_cpu
    mach = k.machine
    page = k.page
    ram64 = k.ram64
    bad = 0
    t0 = monotonic_ns()
    for _ in range(n):
        s = kmap[S.KMALLOC_CACHES_AT + kmap[(size - 1) >> 3]]
        if s < 0 or kc[s, S.KMEM_CACHE_ALLOCATOR] != S.ALLOCATOR_SLUB:
            bad += 1
            break
        c = s * mach[0, S.MACHINE_NR_CPUS] + cpu
        tid = kcc[c, S.KMEM_CACHE_CPU_TID]
        obj = kcc[c, S.KMEM_CACHE_CPU_FREELIST]
        if obj == 0:
            bad += 1
            break
        nxt = ram64[(obj + kc[s, S.KMEM_CACHE_OFFSET]) >> 3]
        if kcc[c, S.KMEM_CACHE_CPU_FREELIST] != obj or kcc[c, S.KMEM_CACHE_CPU_TID] != tid:
            bad += 1
            break
        kcc[c, S.KMEM_CACHE_CPU_FREELIST] = nxt
        kcc[c, S.KMEM_CACHE_CPU_TID] = tid + mach[0, S.MACHINE_TID_STEP]
        kcc[c, S.CPU_STAT + S.ALLOC_FASTPATH] += 1
        if mach[0, S.MACHINE_KASAN] != 0:
            bad += 1
            break
        if obj <= 16:
            bad += 1
            break
        shift = mach[0, S.MACHINE_PAGE_SHIFT]
        pfn = obj >> shift
        if pfn <= 0 or pfn >= page.shape[0]:
            bad += 1
            break
        if (page[pfn, S.PAGE_FLAGS] & S.PG_TAIL) != 0:
            pfn = page[pfn, S.PAGE_COMPOUND_HEAD]
        if (page[pfn, S.PAGE_FLAGS] & S.PG_SLAB) == 0:
            bad += 1
            break
        s = page[pfn, S.PAGE_SLAB_CACHE]
        off = obj - (pfn << shift) - page[pfn, S.PAGE_S_MEM]
        sz = kc[s, S.KMEM_CACHE_SIZE]
        if off < 0 or off % sz != 0:
            bad += 1
            break
        if kc[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
            objects = (page[pfn, S.PAGE_FREELIST] >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE
        else:
            objects = kc[s, S.KMEM_CACHE_OBJECTS]
        if off // sz >= objects:
            bad += 1
            break
        c = s * mach[0, S.MACHINE_NR_CPUS] + cpu
        if kcc[c, S.KMEM_CACHE_CPU_PAGE] != pfn:
            bad += 1
            break
        tid = kcc[c, S.KMEM_CACHE_CPU_TID]
        ram64[(obj + kc[s, S.KMEM_CACHE_OFFSET]) >> 3] = kcc[c, S.KMEM_CACHE_CPU_FREELIST]
        kcc[c, S.KMEM_CACHE_CPU_FREELIST] = obj
        kcc[c, S.KMEM_CACHE_CPU_TID] = tid + mach[0, S.MACHINE_TID_STEP]
        kcc[c, S.CPU_STAT + S.FREE_FASTPATH] += 1
    return monotonic_ns() - t0, bad


# -- measurement helpers ------------------------------------------------------------
def _row(name: str, per_op: list[float], iters: int, **extra) -> dict:
    return row(LABELS, name, per_op, iters, **extra)


def _fast_counts(K, allocator: str) -> tuple[int, int]:
    """(fast allocations, fast frees) so far by CPU on kmalloc-64."""
    k = K.mem
    s = K.cache(f"kmalloc-{SIZE}")
    c = s * K.nr_cpus + CPU
    row = k.kmem_cache_cpu[c]
    if allocator == "slub":
        return int(row[S.CPU_STAT + S.ALLOC_FASTPATH]), int(row[S.CPU_STAT + S.FREE_FASTPATH])
    return (int(row[S.CPU_SLAB_STAT + S.STAT_ALLOCHIT]),
            int(row[S.CPU_SLAB_STAT + S.STAT_FREEHIT]))


def _timed(K, allocator: str, name: str, fn, iters: int, reps: int) -> list[float]:
    """fn(n) -> (elapsed ns, bad); checks every pair took the fast path."""
    a0, f0 = _fast_counts(K, allocator)
    per_op = []
    for _ in range(reps):
        el, bad = fn(iters)
        if bad:
            raise RuntimeError(f"{name}: {bad} pairs left the fast path")
        per_op.append(el / iters)
    a1, f1 = _fast_counts(K, allocator)
    want = iters * reps
    if a1 - a0 != want or f1 - f0 != want:
        raise RuntimeError(f"{name}: {a1 - a0} fast allocations and {f1 - f0} fast frees "
                           f"in {want} pairs")
    if int(K.mem.kasan_report[0, 0]) != 0:
        raise RuntimeError(f"{name}: KASAN reports during the run")
    return per_op



# -- the numba rows -------------------------------------------------------------------
def numba_rows(cfg: dict, log) -> list[dict]:
    rows = []
    reps, n, n_ops = cfg["reps"], cfg["iters"], cfg["ops_iters"]
    topo = small_topology()
    for allocator in ("slub", "slab"):
        for kasan in (False, True):
            sfx = "_kasan" if kasan else ""
            with Kernel(topo, allocator, kasan=kasan, lock_stats=False) as K:
                k = K.mem
                t = K.task_of(CPU)
                # compile and warm up: the first pairs create the cpu slab (SLUB) or
                # fill the array cache (SLAB); later ones must all take the fast path
                w = time.monotonic()
                _loop_direct(k, 1000, CPU, t, SIZE)
                _loop_ops(k, 1000, CPU, t, SIZE, False)
                if allocator == "slub" and not kasan:
                    _loop_ops(k, 1000, CPU, t, SIZE, True)
                    _loop_slub_flat(k, 1000, CPU, SIZE)
                    _loop_slub_flat_hoisted(k, 1000, CPU, SIZE)
                log(f"{allocator}{sfx}: compiled and warmed up in {time.monotonic() - w:.1f} s")
                name = f"{allocator}_direct{sfx}"
                rows.append(_row(name, _timed(K, allocator, name,
                                              lambda m: _loop_direct(k, m, CPU, t, SIZE), n, reps), n))
                name = f"{allocator}_ops{sfx}"
                rows.append(_row(name, _timed(K, allocator, name,
                                              lambda m: _loop_ops(k, m, CPU, t, SIZE, False),
                                              n_ops, reps), n_ops))
                if allocator == "slub" and not kasan:
                    rows.append(_row("slub_runner", _timed(
                        K, allocator, "slub_runner",
                        lambda m: _loop_ops(k, m, CPU, t, SIZE, True), n_ops, reps), n_ops))
                    rows.append(_row("slub_flat", _timed(
                        K, allocator, "slub_flat",
                        lambda m: _loop_slub_flat(k, m, CPU, SIZE), n, reps), n))
                    rows.append(_row("slub_flat_hoisted", _timed(
                        K, allocator, "slub_flat_hoisted",
                        lambda m: _loop_slub_flat_hoisted(k, m, CPU, SIZE), n, reps), n))
    return rows


# -- the pure-Python baseline ---------------------------------------------------------
def python_baseline(iters: int, reps: int) -> list[dict]:
    """Run in a process started with NUMBA_DISABLE_JIT=1: the same loops, interpreted."""
    assert numba_config.DISABLE_JIT, "the baseline needs NUMBA_DISABLE_JIT=1"
    rows = []
    topo = small_topology()
    for allocator in ("slub", "slab"):
        with Kernel(topo, allocator, kasan=False, lock_stats=False) as K:
            k = K.mem
            t = K.task_of(CPU)
            _loop_direct(k, 200, CPU, t, SIZE)
            _loop_ops(k, 200, CPU, t, SIZE, False)
            name = f"py_{allocator}_direct"
            rows.append(_row(name, _timed(K, allocator, name,
                                          lambda m: _loop_direct(k, m, CPU, t, SIZE), iters, reps),
                             iters))
            name = f"py_{allocator}_ops"
            rows.append(_row(name, _timed(K, allocator, name,
                                          lambda m: _loop_ops(k, m, CPU, t, SIZE, False), iters, reps),
                             iters))
    return rows


def run_python_baseline(cfg: dict) -> tuple[list[dict], str]:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--python-baseline",
           str(cfg["py_iters"]), str(cfg["py_reps"])]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], f"pure-Python baseline failed: {e}"
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return [], f"pure-Python baseline failed: {tail}"
    return json.loads(p.stdout), ""


# -- the C twin -----------------------------------------------------------------------
# -- main ----------------------------------------------------------------------------
def run_all(cfg: dict, log, python: bool = True) -> dict:
    cpus = sorted(os.sched_getaffinity(0))
    out = {"host": host_info(), "config": dict(cfg), "rows": [], "notes": []}
    rows = out["rows"]
    os.sched_setaffinity(0, {cpus[0]})
    try:
        rows += numba_rows(cfg, log)
        with tempfile.TemporaryDirectory(prefix="slabemu-bench-") as tmp:
            exe, why = build_c(C_SOURCE, tmp)
            if not exe:
                out["notes"].append(f"C twin: {why}")
                log(f"C twin: {why}")
            else:
                for mode in ("slub", "slub_kasan", "slab", "slab_kasan", "slub_nrt_model"):
                    per_op, why = run_c(exe, mode, cfg["c_iters"], cfg["reps"])
                    if per_op:
                        rows.append(_row(f"c_{mode}", per_op, cfg["c_iters"]))
                    else:
                        out["notes"].append(f"C twin: {mode} failed: {why}")
        if python:
            log(f"pure-Python baseline: {cfg['py_iters']:,} pairs x {cfg['py_reps']} per row...")
            py, why = run_python_baseline(cfg)
            rows += py
            if why:
                out["notes"].append(why)
                log(why)
    finally:
        os.sched_setaffinity(0, set(cpus))

    # Ratios of medians (the targets), and of minimums: the host's speed drifts between
    # rows measured at different times, and the minimum is the least disturbed rep.
    by = {r["name"]: r["median_ns"] for r in rows}
    lo = {r["name"]: r["min_ns"] for r in rows}
    pairs = [(f"{w}_python_over_numba", f"py_{w}", w)
             for w in ("slub_direct", "slub_ops", "slab_direct", "slab_ops")]
    pairs += [(f"{a}_numba_over_c", a, b) for a, b in (
        ("slub_direct", "c_slub"), ("slub_ops", "c_slub"), ("slub_direct_kasan", "c_slub_kasan"),
        ("slab_direct", "c_slab"), ("slab_ops", "c_slab"), ("slab_direct_kasan", "c_slab_kasan"),
        ("slub_flat", "c_slub"), ("slub_flat_hoisted", "c_slub"))]
    ratios, ratios_min = {}, {}
    for key, a, b in pairs:
        if a in by and b in by:
            ratios[key] = by[a] / by[b]
            ratios_min[key] = lo[a] / lo[b]
    out["ratios"] = ratios
    out["ratios_min"] = ratios_min

    def ratio_target(key, ok):
        return bool(ok(ratios[key])) if key in ratios else None

    out["targets"] = {
        "slub_direct_at_most_15ns": bool(by["slub_direct"] <= TARGET_SLUB_NS),
        "slub_ops_at_most_15ns": bool(by["slub_ops"] <= TARGET_SLUB_NS),
        "slub_direct_200x_python": ratio_target("slub_direct_python_over_numba",
                                                lambda r: r >= TARGET_PY_SPEEDUP),
        "slub_ops_200x_python": ratio_target("slub_ops_python_over_numba",
                                             lambda r: r >= TARGET_PY_SPEEDUP),
        "slub_direct_within_3x_of_c": ratio_target("slub_direct_numba_over_c",
                                                   lambda r: r <= TARGET_C_RATIO),
        "slub_ops_within_3x_of_c": ratio_target("slub_ops_numba_over_c",
                                                lambda r: r <= TARGET_C_RATIO),
    }
    return out


def print_table(out: dict) -> None:
    h = out["host"]
    print(f"host: {h['cpu_model']}, {h['logical_cpus']} logical CPUs "
          f"({h['affinity_cpus']} in our affinity set), {h['machine']}; "
          f"python {h['python']}, numba {h['numba']}")
    c = out["config"]
    print(f"reps: {c['reps']} (pure Python: {c['py_reps']}); kmalloc({SIZE}) + kfree on "
          f"emulated CPU {CPU}, 2 nodes, lock_stats off")
    for note in out["notes"]:
        print(note)
    print()
    print(f"{'benchmark (one kmalloc + kfree pair)':<42} {'median ns':>10} {'min ns':>10}  notes")
    print("-" * 84)
    for r in out["rows"]:
        print(f"{r['label']:<42} {r['median_ns']:>10.2f} {r['min_ns']:>10.2f}  {r['iters']:,} pairs")
    print()
    rt, rm, tg = out["ratios"], out["ratios_min"], out["targets"]
    by = {r["name"]: r["median_ns"] for r in out["rows"]}

    def verdict(ok):
        return "n/a" if ok is None else ("target met" if ok else "target NOT met")

    for what, label in (("slub_direct", "SLUB direct"), ("slub_ops", "SLUB via ops")):
        print(f"{label}: {by[what]:.2f} ns per pair (<= {TARGET_SLUB_NS:.0f} ns: "
              f"{verdict(tg[f'{what}_at_most_15ns'])})")
        py = rt.get(f"{what}_python_over_numba")
        print(f"{label}: {py:.0f}x the pure-Python baseline (minimums: "
              f"{rm[f'{what}_python_over_numba']:.0f}x)" if py else
              f"{label}: pure-Python baseline not run", end="")
        print(f" (>= {TARGET_PY_SPEEDUP:.0f}x: {verdict(tg[f'{what}_200x_python'])})")
        cr = rt.get(f"{what}_numba_over_c")
        print(f"{label}: {cr:.2f}x the C twin (minimums: {rm[f'{what}_numba_over_c']:.2f}x)"
              if cr else f"{label}: C twin not run", end="")
        print(f" (<= {TARGET_C_RATIO:.0f}x: {verdict(tg[f'{what}_within_3x_of_c'])})")
    info = []
    for key, label in (("slub_direct_kasan_numba_over_c", "SLUB direct kasan/C kasan"),
                       ("slab_direct_numba_over_c", "SLAB direct/C"),
                       ("slab_ops_numba_over_c", "SLAB ops/C"),
                       ("slab_direct_kasan_numba_over_c", "SLAB direct kasan/C kasan"),
                       ("slub_flat_numba_over_c", "SLUB hand-inlined/C"),
                       ("slub_flat_hoisted_numba_over_c", "hoisted/C")):
        if key in rt:
            info.append(f"{label} {rt[key]:.2f}x")
    for key, label in (("slab_direct_python_over_numba", "SLAB direct"),
                       ("slab_ops_python_over_numba", "SLAB ops")):
        if key in rt:
            info.append(f"{label} {rt[key]:.0f}x pure Python")
    if "slub_direct_kasan" in by:
        info.append(f"KASAN costs SLUB direct {by['slub_direct_kasan'] - by['slub_direct']:+.1f} ns, "
                    f"via ops {by['slub_ops_kasan'] - by['slub_ops']:+.1f} ns")
    if info:
        print("also: " + "; ".join(info))
    steps = [("slub_runner", "slub_ops", "handle_ipis per step"),
             ("slub_ops", "slub_direct", "the op machinery (op_start, op_step's dispatch, "
              "the task row)"),
             ("slub_direct", "slub_flat_hoisted", "what the fast paths reload that a loop "
              "could keep in registers"),
             ("slub_flat_hoisted", "c_slub", "numba indexing and arithmetic vs C")]
    parts = [f"{by[a] - by[b]:+.1f} ns {label}" for a, b, label in steps if a in by and b in by]
    if parts:
        print("where SLUB's time goes (differences of medians): " + "; ".join(parts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer pairs and repetitions, a shorter pure-Python run")
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    ap.add_argument("--no-python", action="store_true", help="skip the pure-Python baseline")
    ap.add_argument("--python-baseline", nargs=2, type=int, metavar=("ITERS", "REPS"),
                    help=argparse.SUPPRESS)  # internal: the NUMBA_DISABLE_JIT=1 subprocess
    args = ap.parse_args(argv)
    if args.python_baseline:
        print(json.dumps(python_baseline(*args.python_baseline)))
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    log = progress_log(args.json)
    return run_and_report(lambda: run_all(cfg, log, python=not args.no_python), args.json,
                          print_table)


if __name__ == "__main__":
    sys.exit(main())
