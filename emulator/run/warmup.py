"""Compile (or load from numba's cache) everything a run executes, in the parent.

The runner calls `warm_up` before it forks workers, so that no worker compiles (design
section 6); ./tools/test calls it before pytest, so that no test pays the cold compile
inside its timeout.  `warm_kernel` boots a tiny machine for each allocator and runs one
op of every kind through the scripted scheduler (tools/bench/compile.py times it);
`warm_up` then warms the worker loop and the workload generator on the same machine.
(This lives in run/, not kernel/: the kernel's warm-up uses the scripted scheduler,
and kernel/ imports nothing from run/.)
"""

from __future__ import annotations

import time

import numpy as np


def warm_up_topology():
    """The machine warm-ups boot: two nodes of one CPU and 8 MiB each."""
    from topo.model import Cpu, Node, Topology

    return Topology(name="warm-up", arch="x86_64", page_size=4096, cache_line=64,
                    nodes=(Node(0, (0,), 8 << 20), Node(1, (1,), 8 << 20)),
                    distances=((10, 20), (20, 10)),
                    cpus=(Cpu(0, 0, 0, 0, 0), Cpu(1, 1, 1, 1, 0)))


def warm_kernel(verbose: bool = False) -> float:
    """The kernel model alone.  Returns the seconds it took (a cold compile, or a load
    from the cache)."""
    from ..kernel.boot import Kernel
    from ..kernel.ops import OP_ALLOC, OP_FREE, OP_KMALLOC, OP_REAP, OP_SHRINK
    from .scripted import Sched, run

    t0 = time.monotonic()
    topo = warm_up_topology()
    for allocator in ("slub", "slab"):
        with Kernel(topo, allocator) as K:
            s = K.cache("kmalloc-64")
            script = np.array([[0, OP_ALLOC, s, -1, 0, 0], [0, OP_KMALLOC, 100, -1, 1, 0],
                               [1, OP_FREE, -1, -1, 0, 0], [1, OP_FREE, -1, -1, 1, 0],
                               [0, OP_SHRINK, s, -1, -1, 0], [1, OP_REAP, -1, -1, -1, 0]],
                              np.int64)
            run(K.mem, Sched.new(script, K.nr_cpus, 2, 0, capacity=64))
    took = time.monotonic() - t0
    if verbose:
        print(f"slabemu: kernel model ready in {took:.1f} s", flush=True)
    return took


def warm_up(verbose: bool = False) -> float:
    from ..kernel.boot import Kernel
    from ..machine import structs as S
    from ..workload.generator import WC_NR, WP_NR, seed_workload
    from ..workload import generator as G
    from .loop import RET_BATCH, WS_NR, wait_start, worker_loop

    t0 = time.monotonic()
    warm_kernel()
    topo = warm_up_topology()
    for allocator in ("slub", "slab"):
        with Kernel(topo, allocator, live_cap=9, max_memcgs=64) as K:
            k = K.mem
            wp = np.zeros(WP_NR, np.int64)
            wp[G.WP_LIVE_TARGET] = 4
            wp[G.WP_LIVE_CAP] = 9
            wp[G.WP_REMOTE_NODE_PPM] = 500000
            wp[G.WP_BURST] = 1
            wp[G.WP_FREE_AT_END] = 1
            wp[G.WP_SHRINK_EVERY] = 7
            wp[G.WP_REAP_EVERY] = 11
            wp[G.WP_BUDGET] = 40
            wp[G.WP_NR_SPECS] = 2
            wp[G.WP_TOTAL_WEIGHT] = 2
            wp[G.WP_MEMCG_LIFETIME] = 13
            # every policy switch on, and preemption, so that every path compiles
            for f in (S.CONFIG_DEAD_CACHES, S.CONFIG_SYNC_BEFORE_DESTROY,
                      S.CONFIG_DEAD_DISCARD_EMPTY, S.CONFIG_SHRINK_TOLERATES_ENOMEM):
                k.config[f] = 1
            k.config[S.CONFIG_PREEMPT_PPM] = 500000
            wc = np.zeros((2, WC_NR), np.int64)
            wc[0] = (1, 64, K.cache("kmalloc-64"), 1)
            wc[1] = (0, 64, K.cache("kmalloc-64"), 2)
            seed_workload(k, 1)
            k.ctl[0, S.CTL_NR_WORKERS] = 0
            wait_start(k, 1)  # nr_workers 0: the one arrival starts it
            k.ctl[0, S.CTL_START] = 0
            k.ctl[0, S.CTL_NR_WORKERS] = 1
            ws = np.zeros(WS_NR, np.int64)
            ws[0] = 12345
            schedule = np.zeros(64, np.int64)
            for _ in range(1000):
                if worker_loop(k, wp, wc, np.arange(2, dtype=np.int64), ws, schedule, 4096) != RET_BATCH:
                    break
                ws[2] = 0
    took = time.monotonic() - t0
    if verbose:
        print(f"slabemu: model ready in {took:.1f} s", flush=True)
    return took


if __name__ == "__main__":
    warm_up(verbose=True)
