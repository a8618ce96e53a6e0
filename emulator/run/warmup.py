"""Compile (or load from numba's cache) everything a run executes, in the parent.

The runner calls `warm_up` before it forks workers, so that no worker compiles (design
section 6); ./tools/test calls it before pytest.  It warms the kernel model
(emulator.kernel.warmup) and then the worker loop and the workload generator on a tiny
two-CPU, two-node machine.
"""

from __future__ import annotations

import time

import numpy as np


def warm_up(verbose: bool = False) -> float:
    from ..kernel.boot import Kernel
    from ..kernel.warmup import warm_up as warm_kernel
    from ..kernel.warmup import warm_up_topology
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
