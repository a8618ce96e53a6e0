#!/usr/bin/env python3
"""Nanoseconds per operation of the emulated machine's primitives, with a C twin.

    ./.venv/bin/python tools/bench/primitives.py [--quick] [--json]

Rows (see tools/bench/README.md for what each one means):
  fetch_add                 atomics.fetch_add on an int64 arena word, one process
  c_fetch_add               the same in C11 (atomic_fetch_add_explicit, seq_cst)
  c_ttas_lock_unlock        a C11 TTAS spinlock, uncontended lock + unlock
  lock_unlock_nostats       spin_lock + spin_unlock, uncontended, lock_stat off
  lock_unlock_nostats_nonrt the same in a loop compiled with _nrt=False (diagnostic)
  lock_unlock_stats         the same with lock_stat on (two monotonic_ns per pair)
  monotonic_ns              atomics.monotonic_ns(), per call
  c_clock_gettime           clock_gettime(CLOCK_MONOTONIC) from C, per call
  mem_tuple_call            page_alloc.should_fail_alloc_page(mem, 0): one fetch_add and two
                            loads, in a (not inlined) njit function taking the Mem tuple
  page_alloc_free           alloc_pages_node + __free_pages, order 0, kasan off
                            (a fresh zone: 10 buddy splits and 10 merges per pair)
  page_alloc_free_kasan     the same with kasan on
  page_alloc_free_nosplit   kasan off, with the buddy page held (no split, no merge)
  contended_fetch_add       fetch_add on one word by every host CPU at once
  contended_lock_unlock_stats  spin_lock + spin_unlock (lock_stat on) by every host CPU

Methodology: every loop runs inside one jitted function and is timed there with
monotonic_ns (a Python->numba call costs ~175 ns, so calling per op would measure the
call).  Everything is compiled and run once before timing.  Each row is measured R
times; the table shows the median and the minimum of elapsed/iterations.  Single-process
rows run pinned to one host CPU.  Contended rows fork one worker per host CPU (the
process's affinity set), pin each to its own CPU, start them at a spin_barrier and let
them run for a fixed time (worker 0 raises a stop flag), so that every worker contends for
the whole measurement; per rep the per-op ns is the median over workers, and the
aggregate Mops/s is all workers' ops over the longest worker's time.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (build_c, host_info, progress_log, row, run_and_report, run_c,  # first:
                      small_topology)  # the repository root on sys.path, numba cache set

import multiprocessing as mp  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from emulator.kernel.page_alloc import (  # noqa: E402
    __free_pages,
    alloc_pages_node,
    free_area_init,
    should_fail_alloc_page,
)
from emulator.machine.arena import Arena, LayoutBuilder  # noqa: E402
from emulator.machine.atomics import (  # noqa: E402
    fetch_add,
    load_relaxed,
    monotonic_ns,
    store_relaxed,
)
from emulator.machine.machine import Machine, MachineConfig  # noqa: E402
from emulator.machine.spinlock import (  # noqa: E402
    check_lock_stats,
    init_lock,
    lock_stat_row,
    spin_barrier,
    spin_lock,
    spin_unlock,
)
from emulator.machine.structs import LOCK_CLASS_OTHER, STRUCTS  # noqa: E402

C_SOURCE = Path(__file__).resolve().parent / "c" / "primitives.c"
FORK = mp.get_context("fork")

# Words of the bench arena's `words` table, each on its own 128-byte line (16 words).
LINE = 16
W_COUNTER = 0 * LINE  # the fetch-add word
W_STOP = 1 * LINE  # the contended rows' stop flag
W_BARRIER = 2 * LINE  # barrier words follow, one line each (a barrier word is used once)
LOCK_W = STRUCTS["lock"].width(128)

TARGET_FETCH_ADD_RATIO = 1.2
TARGET_LOCK_NOSTATS_NS = 10.0

# Iterations per timed loop, and repetitions.
FULL = dict(reps=7, atomic=5_000_000, lock=5_000_000, clock=1_000_000, pages=200_000,
            contended_ms=200, contended_reps=7)
QUICK = dict(reps=3, atomic=200_000, lock=200_000, clock=50_000, pages=10_000,
             contended_ms=30, contended_reps=3)

LABELS = {
    "fetch_add": "atomic fetch_add (numba), 1 process",
    "c_fetch_add": "atomic fetch_add (C11 seq_cst), 1 process",
    "c_ttas_lock_unlock": "TTAS lock+unlock (C11), uncontended",
    "lock_unlock_nostats": "spin_lock+spin_unlock, stats off",
    "lock_unlock_nostats_nonrt": "  the same, caller compiled _nrt=False",
    "lock_unlock_stats": "spin_lock+spin_unlock, stats on",
    "monotonic_ns": "monotonic_ns() per call (numba)",
    "c_clock_gettime": "clock_gettime(MONOTONIC) per call (C)",
    "mem_tuple_call": "should_fail_alloc_page(mem, nid) call",
    "page_alloc_free": "page alloc+free order 0, kasan off",
    "page_alloc_free_kasan": "page alloc+free order 0, kasan on",
    "page_alloc_free_nosplit": "page alloc+free order 0, buddy held",
    "contended_fetch_add": "fetch_add, all host CPUs contending",
    "contended_lock_unlock_stats": "lock+unlock (stats on), all CPUs",
}


# -- jitted loops -------------------------------------------------------------------
@njit(cache=True)
def _loop_fetch_add(words, n):
    t0 = monotonic_ns()
    for _ in range(n):
        fetch_add(words, W_COUNTER, 1)
    return monotonic_ns() - t0


@njit(cache=True)
def _loop_lock(locks, n, cpu):
    t0 = monotonic_ns()
    for _ in range(n):
        spin_lock(locks, 0, cpu)
        spin_unlock(locks, 0)
    return monotonic_ns() - t0


@njit(cache=True, _nrt=False)
def _loop_lock_nonrt(locks, n, cpu):
    """_loop_lock compiled without numba's reference counting (a diagnostic row).

    With NRT on, numba's IR inlining of spin_lock/spin_unlock (inline="always") leaves
    NRT_incref/NRT_decref calls on `locks` in the loop: out-of-line calls, each an atomic
    add on the array's refcount.  This row shows the lock without them.
    """
    t0 = monotonic_ns()
    for _ in range(n):
        spin_lock(locks, 0, cpu)
        spin_unlock(locks, 0)
    return monotonic_ns() - t0


@njit(cache=True)
def _loop_clock(n):
    s = 0
    t0 = monotonic_ns()
    for _ in range(n):
        s += monotonic_ns()
    t1 = monotonic_ns()
    return t1 - t0, s


@njit(cache=True)
def _loop_pages(mem, n, cpu, hold_buddy):
    held = -1
    if hold_buddy:
        held = alloc_pages_node(mem, 0, 0, 0, cpu)
    bad = 0
    t0 = monotonic_ns()
    for _ in range(n):
        pfn = alloc_pages_node(mem, 0, 0, 0, cpu)
        bad += __free_pages(mem, pfn, 0, cpu)
    t1 = monotonic_ns()
    if held >= 0:
        bad += __free_pages(mem, held, 0, cpu)
    return t1 - t0, bad


@njit(cache=True)
def _loop_mem_call(mem, n):
    s = 0
    t0 = monotonic_ns()
    for i in range(n):
        s += should_fail_alloc_page(mem, 0)
    t1 = monotonic_ns()
    return t1 - t0, s


@njit(cache=True)
def _contend_run(words, locks, results, rep, worker, parties, kind, duration_ns):
    """One worker's timed run: fetch_add (kind 0) or lock+unlock (kind 1) until stopped.

    Worker 0 raises the stop flag after duration_ns; the others check it every 64 ops.
    Every worker also gives up after 20x the duration (a lost worker 0 cannot hang it).
    """
    spin_barrier(words, W_BARRIER + rep * LINE, parties)
    t0 = monotonic_ns()
    ops = 0
    give_up = 20 * duration_ns
    while True:
        if kind == 0:
            for _ in range(64):
                fetch_add(words, W_COUNTER, 1)
        else:
            for _ in range(64):
                spin_lock(locks, 0, worker)
                spin_unlock(locks, 0)
        ops += 64
        if load_relaxed(words, W_STOP) > rep:
            break
        if worker == 0 or (ops & 4095) == 0:
            elapsed = monotonic_ns() - t0
            if worker == 0 and elapsed >= duration_ns:
                store_relaxed(words, W_STOP, rep + 1)
                break
            if elapsed >= give_up:
                break
    t1 = monotonic_ns()
    results[rep, worker, 0] = t1 - t0
    results[rep, worker, 1] = ops


# -- measurement helpers ------------------------------------------------------------
def _summary(per_op: list[float]) -> dict:
    return {"median_ns": statistics.median(per_op), "min_ns": min(per_op), "reps": len(per_op)}


def _row(name: str, per_op: list[float], iters: int, **extra) -> dict:
    return row(LABELS, name, per_op, iters, **extra)


def _measure(fn, reps: int, iters: int) -> list[float]:
    """fn(iters) -> elapsed ns; compiled and warmed up by the caller."""
    return [fn(iters) / iters for _ in range(reps)]


def _mem_shape(mem) -> dict:
    """How many tables Mem carries, and whether it is a tuple (each array passed and
    refcounted separately) or a StructRef (one pointer, one refcount)."""
    if isinstance(mem, tuple):
        return {"arrays": len(mem), "mem_kind": "tuple"}
    from numba.experimental.structref import StructRefProxy

    from emulator.machine import structs
    kind = "StructRef" if isinstance(mem, StructRefProxy) else type(mem).__name__
    return {"arrays": len(getattr(structs, "MEM_TABLES", ())), "mem_kind": kind}


# -- the C twin -----------------------------------------------------------------------
# -- contended rows -------------------------------------------------------------------
def _worker(words, locks, results, worker, host_cpu, parties, kind, reps, duration_ns):
    # Ctrl-C reaches the whole process group: the parent handles it (it kills us and
    # unlinks the arena); a worker only has to stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.sched_setaffinity(0, {host_cpu})
    except OSError:
        pass
    for rep in range(reps):
        _contend_run(words, locks, results, rep, worker, parties, kind, duration_ns)


def contended(arena: Arena, kind: int, reps: int, duration_ms: int,
              cpus: list[int]) -> tuple[list[float], dict]:
    """Fork one pinned worker per host CPU; (per-rep median ns/op, extra fields)."""
    words, locks = arena.t.words, arena.t.locks
    words[:] = 0
    init_lock(locks, 0, LOCK_CLASS_OTHER, stats=True)
    n = len(cpus)
    results = np.zeros((reps, n, 2), np.int64)
    shared = arena.t.results
    shared[:] = 0
    procs = [FORK.Process(target=_worker,
                          args=(words, locks, shared, w, cpus[w], n, kind, reps,
                                duration_ms * 1_000_000))
             for w in range(n)]
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + 60 + reps * duration_ms * 20 / 1000
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                raise RuntimeError(f"contended worker {p.pid} did not finish")
            if p.exitcode != 0:
                raise RuntimeError(f"contended worker exited with {p.exitcode}")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    results[:] = shared[:reps, :n]
    per_op, mops = [], []
    lo, hi = [], []
    for rep in range(reps):
        el = results[rep, :, 0].astype(float)
        ops = results[rep, :, 1].astype(float)
        per_worker = el / ops
        per_op.append(float(np.median(per_worker)))
        lo.append(float(per_worker.min()))
        hi.append(float(per_worker.max()))
        mops.append(float(ops.sum() / el.max() * 1e3))
    extra = {"workers": n, "aggregate_mops_median": statistics.median(mops),
             "aggregate_mops_max": max(mops), "duration_ms": duration_ms,
             # the fastest and the slowest worker's ns/op (medians over reps): unfairness
             "worker_min_ns_median": statistics.median(lo),
             "worker_max_ns_median": statistics.median(hi)}
    if kind == 1:
        st = lock_stat_row(locks, 0)
        acq = max(1, st["acquisitions"])
        extra["contention_fraction"] = st["contentions"] / acq
        extra["spins_per_acquisition"] = st["spins"] / acq
        extra["yields_per_acquisition"] = st["yields"] / acq
        extra["acq_bounce_fraction"] = st["acq_bounces"] / acq
        bad = check_lock_stats(locks, 0)
        if bad:
            extra["lock_stat_violations"] = bad
    else:
        extra["counter_ok"] = int(words[W_COUNTER]) == int(results[:, :, 1].sum())
    return per_op, extra


# -- main ----------------------------------------------------------------------------
def run_all(cfg: dict, log) -> dict:
    reps = cfg["reps"]
    cpus = sorted(os.sched_getaffinity(0))
    out = {"host": host_info(), "config": dict(cfg), "rows": [], "notes": []}
    rows = out["rows"]

    b = LayoutBuilder()
    b.add("words", np.int64, W_BARRIER + (cfg["contended_reps"] + 2) * LINE)
    b.add("locks", np.int64, (1, LOCK_W))
    b.add("results", np.int64, (cfg["contended_reps"], len(cpus), 2))
    with Arena.create(b.build()) as arena, tempfile.TemporaryDirectory(prefix="slabemu-bench-") as tmp:
        words, locks = arena.t.words, arena.t.locks

        # Compile everything before any timing (and before forking workers).
        log("compiling...")
        t = time.monotonic()
        _loop_fetch_add(words, 10)
        init_lock(locks, 0, LOCK_CLASS_OTHER, stats=False)
        _loop_lock(locks, 10, 0)
        _loop_lock_nonrt(locks, 10, 0)
        _loop_clock(10)
        scratch_words = np.zeros_like(words)
        scratch_locks = np.zeros_like(locks)
        init_lock(scratch_locks, 0, LOCK_CLASS_OTHER, stats=True)
        _contend_run(scratch_words, scratch_locks, np.zeros((1, 1, 2), np.int64), 0, 0, 1, 0, 1000)
        _contend_run(scratch_words, scratch_locks, np.zeros((1, 1, 2), np.int64), 0, 0, 1, 1, 1000)
        exe, why = build_c(C_SOURCE, tmp)
        log(f"compiled in {time.monotonic() - t:.1f} s")

        # Single-process rows, pinned to one host CPU.
        os.sched_setaffinity(0, {cpus[0]})
        try:
            n = cfg["atomic"]
            _loop_fetch_add(words, n // 10)
            rows.append(_row("fetch_add", _measure(lambda k: _loop_fetch_add(words, k), reps, n), n))
            if not exe:
                out["notes"].append(f"C twin: {why}")
                log(f"C twin: {why}")

            def c_row(name, mode, n):
                per_op = run_c(exe, mode, n, reps)[0] if exe else None
                if per_op:
                    rows.append(_row(name, per_op, n))
                elif exe:
                    out["notes"].append(f"C twin: {mode} failed to run")

            c_row("c_fetch_add", "fetch_add", n)

            n = cfg["lock"]
            c_row("c_ttas_lock_unlock", "ttas", n)
            for name, stats in (("lock_unlock_nostats", False), ("lock_unlock_stats", True)):
                init_lock(locks, 0, LOCK_CLASS_OTHER, stats=stats)
                _loop_lock(locks, n // 10, 0)
                rows.append(_row(name, _measure(lambda k: _loop_lock(locks, k, 0), reps, n), n))
                if not stats:
                    _loop_lock_nonrt(locks, n // 10, 0)
                    rows.append(_row("lock_unlock_nostats_nonrt",
                                     _measure(lambda k: _loop_lock_nonrt(locks, k, 0), reps, n), n))
            init_lock(locks, 0, LOCK_CLASS_OTHER, stats=False)

            n = cfg["clock"]
            _loop_clock(n // 10)
            rows.append(_row("monotonic_ns", _measure(lambda k: _loop_clock(k)[0], reps, n), n))
            c_row("c_clock_gettime", "clock", n)

            n = cfg["pages"]
            topo = small_topology()
            for name, kasan, hold in (("page_alloc_free", False, False),
                                      ("page_alloc_free_kasan", True, False),
                                      ("page_alloc_free_nosplit", False, True)):
                with Machine(topo, MachineConfig(kasan=kasan)) as m:
                    free_area_init(m.mem, topo, m.layout.meta["node_ranges"])
                    if name == "page_alloc_free":
                        k = cfg["clock"]
                        _loop_mem_call(m.mem, 10)
                        rows.append(_row("mem_tuple_call",
                                         _measure(lambda k: _loop_mem_call(m.mem, k)[0], reps, k),
                                         k, **_mem_shape(m.mem)))
                    el, bad = _loop_pages(m.mem, max(1, n // 10), 0, hold)  # compile + warm up
                    per_op = []
                    for _ in range(reps):
                        el, bad2 = _loop_pages(m.mem, n, 0, hold)
                        bad += bad2
                        per_op.append(el / n)
                    if bad:
                        raise RuntimeError(f"{name}: __free_pages reported a bad page")
                    rows.append(_row(name, per_op, n))
        finally:
            os.sched_setaffinity(0, set(cpus))

        # Contended rows: every host CPU of our affinity set, one pinned worker each.
        creps, ms = cfg["contended_reps"], cfg["contended_ms"]
        log(f"contended rows: {len(cpus)} workers...")
        for name, kind in (("contended_fetch_add", 0), ("contended_lock_unlock_stats", 1)):
            per_op, extra = contended(arena, kind, creps, ms, cpus)
            rows.append(_row(name, per_op, 0, **extra))

    by = {r["name"]: r for r in rows}
    ratios = {}
    if "c_fetch_add" in by:
        ratios["fetch_add_numba_over_c"] = by["fetch_add"]["median_ns"] / by["c_fetch_add"]["median_ns"]
    if "c_ttas_lock_unlock" in by:
        ratios["lock_nostats_numba_over_c"] = (by["lock_unlock_nostats"]["median_ns"]
                                               / by["c_ttas_lock_unlock"]["median_ns"])
    out["ratios"] = ratios
    out["targets"] = {
        "fetch_add_within_1.2x_of_c": (ratios["fetch_add_numba_over_c"] <= TARGET_FETCH_ADD_RATIO
                                       if "fetch_add_numba_over_c" in ratios else None),
        "lock_unlock_nostats_under_10ns": by["lock_unlock_nostats"]["median_ns"] < TARGET_LOCK_NOSTATS_NS,
    }
    return out


def print_table(out: dict) -> None:
    h = out["host"]
    print(f"host: {h['cpu_model']}, {h['logical_cpus']} logical CPUs "
          f"({h['affinity_cpus']} in our affinity set), {h['machine']}; "
          f"python {h['python']}, numba {h['numba']}")
    c = out["config"]
    print(f"reps: {c['reps']} (contended: {c['contended_reps']} x {c['contended_ms']} ms)")
    for note in out["notes"]:
        print(note)
    print()
    print(f"{'benchmark':<42} {'median ns/op':>12} {'min ns/op':>10}  notes")
    print("-" * 84)
    for r in out["rows"]:
        note = ""
        if "workers" in r:
            note = (f"{r['workers']} workers ({r['worker_min_ns_median']:.0f}..{r['worker_max_ns_median']:.0f}"
                    f" ns/op), {r['aggregate_mops_median']:.1f} Mops/s aggregate")
            if "contention_fraction" in r:
                note += f", {100 * r['contention_fraction']:.0f}% contended"
        else:
            note = f"{r['iters']:,} iters"
            if "arrays" in r:
                note += f", Mem: {r['mem_kind']} of {r['arrays']} arrays"
        print(f"{r['label']:<42} {r['median_ns']:>12.2f} {r['min_ns']:>10.2f}  {note}")
    print()
    rt, tg = out["ratios"], out["targets"]
    if "fetch_add_numba_over_c" in rt:
        print(f"fetch_add numba/C: {rt['fetch_add_numba_over_c']:.2f}x "
              f"(target <= {TARGET_FETCH_ADD_RATIO}x: {'met' if tg['fetch_add_within_1.2x_of_c'] else 'NOT met'})")
    else:
        print("fetch_add numba/C: n/a (C twin not built)")
    if "lock_nostats_numba_over_c" in rt:
        print(f"lock+unlock (stats off) numba/C TTAS: {rt['lock_nostats_numba_over_c']:.2f}x")
    by = {r["name"]: r for r in out["rows"]}
    print(f"lock+unlock stats off: {by['lock_unlock_nostats']['median_ns']:.2f} ns "
          f"(target < {TARGET_LOCK_NOSTATS_NS:.0f} ns: "
          f"{'met' if tg['lock_unlock_nostats_under_10ns'] else 'NOT met'})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations and repetitions")
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    return run_and_report(lambda: run_all(cfg, progress_log(args.json)), args.json, print_table)


if __name__ == "__main__":
    sys.exit(main())
