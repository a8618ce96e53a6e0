"""memcg offline and child-cache creation as 3.16 and v2's patch 6 (as posted) do them,
and kmalloc_large pages charged to the memcg.

Each test follows a hand-worked kernel trace (state before, the calls, state after), on
SLUB, two nodes of two CPUs, each op stepped by hand:
  - patch 6/8 (07a2c0a9d898...): memcg_unregister_all_caches holds memcg_slab_mutex
    across the loop, synchronize_sched() (called whether or not a cache was collected)
    and the destroys; memcg_create_cache_work_func sleeps on that mutex meanwhile, the
    memcg's allocations going to the root cache;
  - alloc_kmem_pages / free_kmem_pages (3.16): kmalloc_large pages charged to the
    task's memcg and its ancestors, pinning an offline memcg until freed;
  - memcg_kmem_create_cache (3.16) does not check that the memcg is still online: a
    creation queued before an offline and run after it leaves an orphan cache.
"""

from __future__ import annotations

import functools

import numpy as np

from emulator.kernel import boot as boot_mod
from emulator.kernel.boot import Kernel
from emulator.kernel.memcontrol import MEMCG_CACHE_QUEUED, memcg_alloc, queue_destroy
from emulator.kernel.ops import (OP_CACHE_CREATE, OP_FREE, OP_KMALLOC, OP_MEMCG_OFFLINE, OP_NONE,
                                 PH_OFFLINE_SYNC, STEP_BLOCKED, STEP_DONE, STEP_NEXT, op_start,
                                 op_step)
from emulator.kernel.rcu import rcu_do_callbacks, rcu_qs
from emulator.kernel.slab_common import NUMA_NO_NODE, TF_CREATE_WAITED, TF_SLEEPING
from emulator.kernel.workqueue import WORK_CACHE_CREATE, WORK_CACHE_DESTROY, work_dequeue
from emulator.machine import structs as S
from emulator.machine.machine import MachineConfig
from emulator.run import collect as C

from ..conftest import small_topology
from .op_harness import finish_op


def _boot(sync_before_destroy=1, **kernel_kw):
    K = Kernel(small_topology(node_mib=(8, 8), cpus_per_node=2), "slub", lock_stats=True,
               max_memcgs=8, **kernel_kw)
    k = K.mem
    k.task[:, S.TASK_MEMCG] = -1
    k.config[S.CONFIG_DEAD_CACHES] = 1  # v2-full's switches
    k.config[S.CONFIG_SYNC_BEFORE_DESTROY] = sync_before_destroy
    k.config[S.CONFIG_DEAD_DISCARD_EMPTY] = 1
    k.config[S.CONFIG_NONPREEMPTIBLE_FREE] = 1
    k.config[S.CONFIG_SHRINK_TOLERATES_ENOMEM] = 1
    k.config[S.CONFIG_STEP_NS] = 1000  # the deterministic clock: 1 us per step
    return K


def _run(K, t, op, cache=-1, size=0, obj=0):
    """One op on task t to completion (every CPU answers IPIs and passes quiescent
    states while it waits)."""
    op_start(K.mem, t, op, cache, NUMA_NO_NODE, size, obj)
    return finish_op(K, t, quiescent=True)


def _dequeue_create(K, cpu):
    """CPU `cpu`'s kworker takes its next work item: it must be a creation."""
    k = K.mem
    msg = np.zeros(k.slots.shape[2] - 1, np.int64)
    assert work_dequeue(k, cpu, msg) and msg[0] == WORK_CACHE_CREATE
    kw = K.task_of(cpu, 1)
    op_start(k, kw, OP_CACHE_CREATE, int(msg[1]), NUMA_NO_NODE, 0, 0)
    k.task[kw, S.TASK_ITER2] = msg[2]
    k.task[kw, S.TASK_AUX] = msg[3]  # the clock at queueing
    return kw


def test_patch6_offline_holds_memcg_slab_mutex_across_grace_period_and_creation_waits():
    with _boot() as K:
        k = K.mem
        kmalloc64 = K.cache("kmalloc-64")
        m1 = memcg_alloc(k, 0, -1)
        m2 = memcg_alloc(k, 1, -1)
        t0, t1 = K.task_of(0), K.task_of(1)
        k.task[t0, S.TASK_MEMCG] = m1
        k.task[t1, S.TASK_MEMCG] = m2
        # CPU 1's task (memcg m2) asks for kmalloc(64) at clock 100 us: no child cache
        # yet, so memcg_kmem_get_cache queues the creation on CPU 1 and the object
        # comes from the root cache
        k.ctl[0, S.CTL_CLOCK_STEPS] = 100
        obj = _run(K, t1, OP_KMALLOC, size=64)
        assert k.page[obj >> 12, S.PAGE_SLAB_CACHE] == kmalloc64
        assert k.memcg_caches[m2, kmalloc64] == MEMCG_CACHE_QUEUED
        assert int(k.cpu[1, S.CPU_ROOT_FALLBACKS]) == 1
        # CPU 0's task takes m1 offline (m1 has no child cache at all)
        op_start(k, t0, OP_MEMCG_OFFLINE, -1, NUMA_NO_NODE, 0, m1)
        assert op_step(k, t0) == STEP_NEXT  # mutex_lock(&memcg_slab_mutex), offline, no cache
        assert int(k.rcu[0, S.RCU_MEMCG_SLAB_MUTEX_OWNER]) == t0 + 1
        assert k.memcg[m1, S.MEMCG_STATE] == S.MEMCG_OFFLINE
        assert k.task[t0, S.TASK_PHASE] == PH_OFFLINE_SYNC  # synchronize_sched() anyway
        assert op_step(k, t0) == STEP_BLOCKED  # grace period 1 requested and started
        assert int(k.rcu[0, S.RCU_OFFLINE_SYNCS]) == 1
        assert int(k.rcu[0, S.RCU_GP_STARTED]) == 1 and int(k.rcu[0, S.RCU_GP_COMPLETED]) == 0
        # CPU 1's kworker runs the creation: memcg_slab_mutex is held, it sleeps (a
        # quiescent state of CPU 1)
        kw = _dequeue_create(K, 1)
        assert op_step(k, kw) == STEP_BLOCKED
        assert k.task[kw, S.TASK_FLAGS] & (TF_SLEEPING | TF_CREATE_WAITED) == TF_SLEEPING | TF_CREATE_WAITED
        assert int(k.rcu[0, S.RCU_MEMCG_MUTEX_WAITS]) == 1
        assert k.memcg_caches[m2, kmalloc64] == MEMCG_CACHE_QUEUED
        # CPUs 2 and 3 pass quiescent states; CPU 0's wait ends the grace period
        rcu_qs(k, 2)
        rcu_qs(k, 3)
        assert op_step(k, t0) == STEP_NEXT
        assert int(k.rcu[0, S.RCU_GP_COMPLETED]) == 1
        assert op_step(k, t0) == STEP_DONE  # nothing collected; mutex_unlock; css_free
        assert int(k.rcu[0, S.RCU_MEMCG_SLAB_MUTEX_OWNER]) == 0
        assert k.memcg[m1, S.MEMCG_STATE] == S.MEMCG_RELEASED
        # at clock 600 us the kworker tries again, gets both mutexes and creates the
        # cache: 500 us after the work was queued
        k.ctl[0, S.CTL_CLOCK_STEPS] = 600
        assert op_step(k, kw) == STEP_DONE
        child = int(k.memcg_caches[m2, kmalloc64])
        assert child >= 0 and k.kmem_cache[child, S.KMEM_CACHE_STATE] == S.CACHE_ACTIVE
        assert int(k.task[kw, S.TASK_FLAGS]) & TF_SLEEPING == 0
        assert int(k.rcu[0, S.RCU_SLAB_MUTEX_OWNER]) == 0 == int(k.rcu[0, S.RCU_MEMCG_SLAB_MUTEX_OWNER])
        assert (int(k.rcu[0, S.RCU_CREATES]), int(k.rcu[0, S.RCU_CREATE_WAITED]),
                int(k.rcu[0, S.RCU_CREATE_LATENCY_TOTAL]), int(k.rcu[0, S.RCU_CREATE_LATENCY_MAX])) \
            == (1, 1, 500_000, 500_000)
        m = C.memcg_summary(K)
        assert (m["offline_syncs"], m["caches_created"], m["creations_waited"],
                m["creation_latency_mean_us"], m["creation_latency_max_us"]) == (1, 1, 1, 500.0, 500.0)


def test_without_patch6_an_empty_offline_takes_no_grace_period():
    # pre-patch-6 kernels (sync_before_destroy off): the offline of a memcg without
    # caches takes memcg_slab_mutex, marks it offline and is done in one phase
    with _boot(sync_before_destroy=0) as K:
        k = K.mem
        m1 = memcg_alloc(k, 0, -1)
        t0 = K.task_of(0)
        op_start(k, t0, OP_MEMCG_OFFLINE, -1, NUMA_NO_NODE, 0, m1)
        assert op_step(k, t0) == STEP_DONE
        assert int(k.rcu[0, S.RCU_OFFLINE_SYNCS]) == 0 and int(k.rcu[0, S.RCU_GP_STARTED]) == 0
        assert int(k.rcu[0, S.RCU_MEMCG_SLAB_MUTEX_OWNER]) == 0
        assert k.memcg[m1, S.MEMCG_STATE] == S.MEMCG_RELEASED


def test_kmalloc_large_charges_the_memcg_and_pins_it_offline():
    # kmalloc(20000) on SLUB (largest kmalloc cache 8192): kmalloc_large, order 3
    # (8 pages, 32768 >= 20000).  alloc_kmem_pages charges 8 pages to m and, the counter
    # being hierarchical, to its parent group g; the page records m.
    with _boot(sync_before_destroy=0) as K:
        k = K.mem
        g = memcg_alloc(k, 0, -1)
        m = memcg_alloc(k, 0, g)
        t0, t1 = K.task_of(0), K.task_of(1)
        k.task[t0, S.TASK_MEMCG] = m
        addr = _run(K, t0, OP_KMALLOC, size=20000)
        pfn = addr >> 12
        assert k.page[pfn, S.PAGE_SLAB_CACHE] == -1 and k.page[pfn, S.PAGE_COMPOUND_ORDER] == 3
        assert k.page[pfn, S.PAGE_MEMCG] == m
        assert (int(k.memcg[m, S.MEMCG_KMEM_PAGES]), int(k.memcg[g, S.MEMCG_KMEM_PAGES])) == (8, 8)
        # m goes offline with the block still allocated: kmem_cgroup_css_offline keeps a
        # reference while its kmem usage is not 0 -> m stays (pinned), g stays pinned by m
        k.task[t0, S.TASK_MEMCG] = -1
        _run(K, t0, OP_MEMCG_OFFLINE, obj=m)
        assert k.memcg[m, S.MEMCG_STATE] == S.MEMCG_OFFLINE
        assert int(k.memcg[g, S.MEMCG_NR_CHILDREN]) == 1
        # CPU 1 (root memcg) kfree()s it: free_kmem_pages uncharges m (and g) and the
        # last uncharge releases m
        _run(K, t1, OP_FREE, obj=addr)
        assert (int(k.memcg[m, S.MEMCG_KMEM_PAGES]), int(k.memcg[g, S.MEMCG_KMEM_PAGES])) == (0, 0)
        assert k.page[pfn, S.PAGE_MEMCG] == -1
        assert k.memcg[m, S.MEMCG_STATE] == S.MEMCG_RELEASED
        assert int(k.memcg[g, S.MEMCG_NR_CHILDREN]) == 0
        # a root-memcg task's large allocation is charged nowhere
        addr = _run(K, t1, OP_KMALLOC, size=20000)
        assert k.page[addr >> 12, S.PAGE_MEMCG] == -1


def test_creation_for_a_memcg_gone_offline_is_not_refused():
    # 3.16: memcg_create_cache_enqueue takes a css reference and queues the work;
    # memcg_create_cache_work_func -> memcg_kmem_create_cache checks only whether the
    # cache exists, not whether the memcg is still online.
    with _boot() as K:
        k = K.mem
        kmalloc64 = K.cache("kmalloc-64")
        m = memcg_alloc(k, 0, -1)
        t0 = K.task_of(0)
        k.task[t0, S.TASK_MEMCG] = m
        _run(K, t0, OP_KMALLOC, size=64)  # served by the root cache; creation queued
        assert k.memcg_caches[m, kmalloc64] == MEMCG_CACHE_QUEUED
        # the task moves to the root memcg and takes m offline before CPU 0's kworker
        # runs: memcg_unregister_all_caches finds no child cache of m; the queued work
        # still holds its reference, so m is offline, not released
        k.task[t0, S.TASK_MEMCG] = -1
        _run(K, t0, OP_MEMCG_OFFLINE, obj=m)
        assert k.memcg[m, S.MEMCG_STATE] == S.MEMCG_OFFLINE
        assert int(k.rcu[0, S.RCU_OFFLINE_SYNCS]) == 1
        # the creation work runs now and creates m's child of kmalloc-64
        kw = _dequeue_create(K, 0)
        assert op_step(k, kw) == STEP_DONE and k.task[kw, S.TASK_OP] == OP_NONE
        c = int(k.memcg_caches[m, kmalloc64])
        assert c >= 0 and k.kmem_cache[c, S.KMEM_CACHE_STATE] == S.CACHE_ACTIVE
        p = k.memcg_cache_params
        # never marked dead; the initial reference, owned by a memcg already offline,
        # is never dropped: the cache is never destroyed and pins m for good
        assert (int(p[c, S.MEMCG_CACHE_PARAMS_MEMCG]), int(p[c, S.MEMCG_CACHE_PARAMS_DEAD]),
                int(p[c, S.MEMCG_CACHE_PARAMS_REFCNT])) == (m, 0, 1)
        assert int(k.memcg[m, S.MEMCG_NR_CACHES]) == 1
        assert k.memcg[m, S.MEMCG_STATE] == S.MEMCG_OFFLINE
        leaks = C.leak_summary(K)
        assert (leaks["orphan_caches"], leaks["dead_caches"], leaks["pinned_memcgs"]) == (1, 0, 1)


def test_call_rcu_sched_never_runs_out_of_room(monkeypatch):
    # call_rcu() never fails in the kernel.  Trace: no CPU passes a quiescent state, CPU 0
    # queues the destroy of every cache row (queue_destroy, patch 6's call_rcu_sched);
    # after: every destroy waits in CPU 0's callback list and no destroy work is queued;
    # once every CPU has passed a quiescent state, rcu_do_callbacks queues them all.
    def queue_all(K):
        k = K.mem
        rows = k.kmem_cache.shape[0]
        assert rows > 256
        for s in range(rows):
            queue_destroy(k, s, 0)
        msg = np.zeros(k.slots.shape[2] - 1, np.int64)
        return k, rows, msg

    with _boot(extra_caches=300) as K:
        k, rows, msg = queue_all(K)
        assert k.cpu[0, S.CPU_RCU_CBS] == rows
        assert not work_dequeue(k, 0, msg)  # nothing destroyed before the grace period
        for _ in range(4):
            for c in range(K.nr_cpus):
                rcu_qs(k, c)
        rcu_do_callbacks(k, 0)
        assert k.cpu[0, S.CPU_RCU_CBS] == 0
        n = 0
        while work_dequeue(k, 0, msg):
            assert msg[0] == WORK_CACHE_DESTROY
            n += 1
        assert n == rows
    # the list the model once had (256 slots) filled, and the destroy after it lost its
    # grace period: queued as work at once
    monkeypatch.setattr(boot_mod, "MachineConfig", functools.partial(MachineConfig, rcu_cb_cap=256))
    with _boot(extra_caches=300) as K:
        k, rows, msg = queue_all(K)
        assert k.cpu[0, S.CPU_RCU_CBS] == 256
        assert work_dequeue(k, 0, msg) and msg[0] == WORK_CACHE_DESTROY
