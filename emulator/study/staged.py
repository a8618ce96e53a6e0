"""Virtual-time runs with every CPU's workload task in one memcg, for the studies.

What it models: the review's tests, where the tasks of one memcg run on every CPU.  The
workload generator gives each CPU its own memcg (scenario [memcg] lifetime); these runs
instead put every CPU's workload task in one memcg (mem_cgroup_move_task of each task
into the same cgroup), so that all CPUs of a node allocate from and free into the same
child cache and share its kmem_cache_node and list_lock, the contended case.  The memcg
is never taken offline by the generator (a cgroup with tasks in it cannot be removed:
rmdir returns -EBUSY); every stage runs in virtual time on one set of clocks.

SharedMemcgRun (the reparent study):
  1. every CPU issues its op budget in the memcg (free_at_end off: at its budget it
     keeps what it holds and only frees the objects other CPUs hand it);
  2. every task moves back to the root memcg (the objects stay charged to the memcg
     and in its child cache, as in the kernel), then every CPU frees what it holds into
     the still live child cache.
SharedMemcgFreeRun (the davydov and scaling studies):
  1. every CPU allocates its op budget of objects (free_at_end off: it keeps them);
  2. dead variant: CPU 0's workload task takes the memcg offline (mem_cgroup_css_offline
     -> memcg_unregister_all_caches: the child caches become dead);
  3. a barrier (every clock moves to the latest), then every CPU frees what it holds.
The free phase of each CPU is its last stage, from the barrier to the step that freed
its last object (summary virtual.free_phase_ns).
Invariant between stages: no op in flight, every inbox empty (the loop has finished).
"""

from __future__ import annotations

import time

from ..kernel.memcontrol import memcg_alloc
from ..machine import structs as S
from ..run.runner import Run
from ..run.virtual import (RET_ABORTED, RET_FINISHED, SEEN_EMPTIED_AT, SEEN_FREEING_AT,
                           VirtualClock, heap_init)
from ..workload import generator as G
from ..workload.generator import _start_offline
from topo.errors import ConfigError


def join_shared_memcg(K) -> int:
    """Allocate one memcg under the root and move every CPU's workload task into it;
    its id."""
    k = K.mem
    tpc = K.cfg.tasks_per_cpu
    m = memcg_alloc(k, 0, -1)
    if m < 0:
        raise RuntimeError("no memcg row for the shared memcg")
    for c in range(K.nr_cpus):
        k.task[c * tpc, S.TASK_MEMCG] = m
    return m


def leave_memcg_and_free(K) -> None:
    """Every CPU's workload task back in the root memcg, and set to free what it holds."""
    k = K.mem
    tpc = K.cfg.tasks_per_cpu
    for c in range(K.nr_cpus):
        k.task[c * tpc, S.TASK_MEMCG] = -1
        k.wl[c, S.WORKLOAD_STATE] = G.WL_FREEING


class SharedMemcgRun(Run):
    """An ordinary virtual run of the scenario's workload, in one shared memcg."""

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

    def _start(self, K, topology, costs):
        K.mem.ctl[0, S.CTL_NR_WORKERS] = 1
        vt = VirtualClock(K, topology, costs, self.sc.seed)
        self.virtual = vt
        self.t_start = time.monotonic()
        return vt, join_shared_memcg(K)

    def _run_virtual(self, K, wp, wc, topology, costs) -> None:
        vt, _ = self._start(K, topology, costs)
        wp = wp.copy()
        end_free = wp[G.WP_FREE_AT_END]
        wp[G.WP_FREE_AT_END] = 0
        self._until_idle(vt, wp, wc)  # 1: the workload, in the memcg
        if end_free:  # 2: free what is left, from the root memcg
            leave_memcg_and_free(K)
            wp[G.WP_FREE_AT_END] = 1
            self._until_idle(vt, wp, wc)
        vt.finish()
        self.elapsed_run = time.monotonic() - self.t_start


class SharedMemcgFreeRun(SharedMemcgRun):
    def __init__(self, scenario, options, dead: bool):
        super().__init__(scenario, options)
        self.dead = dead

    def _run_virtual(self, K, wp, wc, topology, costs) -> None:
        k = K.mem
        tpc = K.cfg.tasks_per_cpu
        vt, m = self._start(K, topology, costs)
        wp = wp.copy()
        wp[G.WP_FREE_AT_END] = 0
        self._until_idle(vt, wp, wc)  # 1: allocate
        if self.dead:  # 2: rmdir the memcg
            for c in range(K.nr_cpus):
                k.task[c * tpc, S.TASK_MEMCG] = -1
            _start_offline(k, 0, 0, m)
            self._until_idle(vt, wp, wc)
        leave_memcg_and_free(K)  # 3: free, all starting together
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


def run_shared(scenario, options):
    """The scenario's workload in one shared memcg (SharedMemcgRun).  It needs an op
    budget (the first stage ends when every CPU has spent it) and no memcg churn (which
    would move the tasks to memcgs of their own)."""
    if scenario.ops_per_cpu is None:
        raise ConfigError(scenario.path, "ops_per_cpu", "an op budget for a shared-memcg run",
                          None)
    if scenario.memcg.lifetime > 0:
        raise ConfigError(scenario.path, "memcg.lifetime", "0 for a shared-memcg run",
                          scenario.memcg.lifetime)
    return SharedMemcgRun(scenario, options).execute()


def run_staged(scenario, options, dead: bool):
    return SharedMemcgFreeRun(scenario, options, dead).execute()
