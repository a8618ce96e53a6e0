"""A staged virtual-time run for the free-into-a-dead-cache studies.

What it models: the review's test as Davydov described it: the tasks of one memcg
allocate objects on every CPU, the memcg is removed (dead variant) or not (live), then
every CPU frees what it allocated.  The workload generator gives each CPU its own memcg;
this run instead puts every CPU's workload task in one memcg, so that all CPUs of a node
share the same child cache and its node's list_lock, as in the test.  Stages, all in
virtual time on one set of clocks:
  1. every CPU allocates its op budget of objects (free_at_end off: it keeps them);
  2. dead variant: CPU 0's workload task takes the memcg offline (mem_cgroup_css_offline
     -> memcg_unregister_all_caches: the child caches become dead);
  3. a barrier (every clock moves to the latest), then every CPU frees what it holds.
The free phase of each CPU is stage 3, from the barrier to the step that freed its last
object (summary virtual.free_phase_ns).
"""

from __future__ import annotations

import numpy as np

from ..machine import structs as S
from ..run.runner import Run
from ..run.virtual import (RET_ABORTED, RET_FINISHED, SEEN_EMPTIED_AT, SEEN_FREEING_AT,
                           VirtualClock, heap_init)
from ..workload import generator as G
from ..workload.generator import _start_offline
from ..kernel.memcontrol import memcg_alloc


class SharedMemcgFreeRun(Run):
    def __init__(self, scenario, options, dead: bool):
        super().__init__(scenario, options)
        self.dead = dead

    def _until_idle(self, vt, wp, wc) -> None:
        k = vt.K.mem
        while True:
            r = vt.run(wp, wc, 1 << 16)
            if r == RET_FINISHED:
                break
            if r == RET_ABORTED:
                raise RuntimeError("virtual run aborted")
        k.ctl[0, S.CTL_FINISH] = 0  # the next stage goes on
        k.ctl[0, S.CTL_DONE] = 0
        vt.ws[:] = 0

    def _run_virtual(self, K, wp, wc, topology, costs) -> None:
        import time

        k = K.mem
        tpc = K.cfg.tasks_per_cpu
        k.ctl[0, S.CTL_NR_WORKERS] = 1
        vt = VirtualClock(K, topology, costs, self.sc.seed)
        self.virtual = vt
        self.t_start = time.monotonic()
        m = memcg_alloc(k, 0, -1)
        if m < 0:
            raise RuntimeError("no memcg row for the shared memcg")
        for c in range(K.nr_cpus):
            k.task[c * tpc, S.TASK_MEMCG] = m
        wp = wp.copy()
        wp[G.WP_FREE_AT_END] = 0
        self._until_idle(vt, wp, wc)  # 1: allocate
        if self.dead:  # 2: rmdir the memcg
            for c in range(K.nr_cpus):
                k.task[c * tpc, S.TASK_MEMCG] = -1
            _start_offline(k, 0, 0, m)
            self._until_idle(vt, wp, wc)
        for c in range(K.nr_cpus):  # 3: free, all starting together
            k.task[c * tpc, S.TASK_MEMCG] = -1
            k.wl[c, S.WORKLOAD_STATE] = G.WL_FREEING
        start = int(vt.clock.max())
        vt.acc[:, -1] += start - vt.clock  # the barrier's wait counts as idle
        vt.clock[:] = start
        heap_init(vt.heap, vt.clock, vt.tie)
        vt.seen[:, SEEN_FREEING_AT] = start
        vt.seen[:, SEEN_EMPTIED_AT] = -1
        vt.mark_acc[:, 0, :] = vt.acc
        self.stage_start_ns = start
        wp[G.WP_FREE_AT_END] = 1
        self._until_idle(vt, wp, wc)
        vt.finish()
        self.elapsed_run = time.monotonic() - self.t_start


def run_staged(scenario, options, dead: bool):
    return SharedMemcgFreeRun(scenario, options, dead).execute()
