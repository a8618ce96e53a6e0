"""SLAB's cache_reap as 3.16 runs it (mm/slab.c start_cpu_timer, cache_reap, reap_alien,
drain_array, drain_freelist, next_reap_node; kernel/time/timer.c round_jiffies_common).

Each test follows a hand-worked kernel trace: the state before, the calls, the state
after, with the numbers worked out from the kernel's formulas in the comments.  The
machine: two nodes of two CPUs (CPUs 0-1 on node 0), SLAB, HZ = 250, kmalloc-1024
(4 objects per one-page slab; limit 54, batchcount 27, shared factor 8).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from emulator.kernel import slab as SLAB
from emulator.kernel.boot import Kernel
from emulator.kernel.jiffies import HZ, REAPTIMEOUT_AC, REAPTIMEOUT_NODE, round_jiffies_relative, tick
from emulator.kernel.ops import (OP_ALLOC, OP_FREE, OP_NONE, OP_REAP, STEP_DONE, op_start,
                                 op_step, reap_timer)
from emulator.kernel.slab_common import NUMA_NO_NODE, TF_REAP_TIMER
from emulator.kernel.workqueue import WORK_CACHE_REAP, work_dequeue
from emulator.machine import structs as S
from emulator.run.runner import RunOptions, run_scenario
from emulator.workload.scenario import load_scenario

from ..conftest import small_topology
from .op_harness import finish_op


def _boot():
    K = Kernel(small_topology(node_mib=(8, 8), cpus_per_node=2), "slab", lock_stats=True)
    K.mem.task[:, S.TASK_MEMCG] = -1
    return K


def _run_op(K, cpu, op, cache=-1, obj=0, t=None, flags=0):
    k = K.mem
    t = K.task_of(cpu) if t is None else t
    op_start(k, t, op, cache, NUMA_NO_NODE, k.kmem_cache[cache, S.KMEM_CACHE_OBJECT_SIZE] if cache >= 0 else 0, obj)
    k.task[t, S.TASK_FLAGS] |= flags
    return finish_op(K, t)


def _node(k, s, nid, field):
    return int(k.kmem_cache_node[s * 2 + nid, field])


def test_start_cpu_timer_and_round_jiffies():
    # start_cpu_timer(cpu) at boot (jiffies 0): __round_jiffies_relative(HZ, cpu).
    # round_jiffies_common(250, cpu): j = 250 + 3*cpu, rem = 3*cpu < HZ/4 -> round down
    # to 250, minus the skew again: 250 - 3*cpu.  init_reap_node: the node after the
    # CPU's memory node (node 0 -> 1, node 1 -> 0).
    with _boot() as K:
        k = K.mem
        assert [int(v) for v in k.cpu[:4, S.CPU_REAP_NEXT]] == [250, 247, 244, 241]
        assert [int(v) for v in k.cpu[:4, S.CPU_REAP_NODE]] == [1, 1, 0, 0]
    # cache_reap's re-arm, round_jiffies_relative(REAPTIMEOUT_AC) on CPU 1:
    # at jiffies 1000: 1500 + 3 = 1503, rem 3 -> 1500 - 3 = 1497: 497 from now;
    # at jiffies 1100: 1600 + 3 = 1603, rem 103 >= 62 -> up to 1750 - 3 = 1747: 647;
    # on CPU 0 at 1000: 1500 exactly: 500.
    assert REAPTIMEOUT_AC == 2 * HZ == 500 and REAPTIMEOUT_NODE == 1000
    assert round_jiffies_relative(500, 1, 1000) == 497
    assert round_jiffies_relative(500, 1, 1100) == 647
    assert round_jiffies_relative(500, 0, 1000) == 500


def test_cache_reap_one_per_cpu_every_pass_per_node_when_due():
    """CPU 0 allocates 40 kmalloc-1024 objects and frees them: they sit in its array.
    Four cache_reap passes around n->next_reap show the per-CPU part running every time
    and the per-node part (shared array, drain_freelist) only when next_reap is due."""
    with _boot() as K:
        k = K.mem
        s = K.cache("kmalloc-1024")
        ac = SLAB.ac_cpu(k, s, 0)
        assert (int(k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]), int(k.kmem_cache[s, S.KMEM_CACHE_LIMIT]),
                int(k.kmem_cache[s, S.KMEM_CACHE_BATCHCOUNT])) == (4, 54, 27)
        # free_limit = (1 + nr_cpus_node) * batchcount + num = 3 * 27 + 4
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_FREE_LIMIT) == 85
        # n->next_reap = jiffies + REAPTIMEOUT_NODE + (cachep % REAPTIMEOUT_NODE)
        nr = _node(k, s, 0, S.KMEM_CACHE_NODE_NEXT_REAP)
        assert nr == 1000 + (s * 256) % 1000
        # each refill grows one slab and takes its 4 objects (slabs_free touched), so 40
        # allocations make 10 full slabs; the 40 frees fill the array (FREEHIT, < limit)
        objs = [_run_op(K, 0, OP_ALLOC, s) for _ in range(40)]
        for o in objs:
            _run_op(K, 0, OP_FREE, obj=o)
        assert int(k.array_cache[ac, S.ARRAY_CACHE_AVAIL]) == 40
        assert int(k.array_cache[ac, S.ARRAY_CACHE_TOUCHED]) == 1
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_NR_FULL) == 10
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_FREE_TOUCHED) == 1
        free_pages0 = int(k.zone[0, S.ZONE_NR_FREE_PAGES])

        # pass 1 at next_reap - 1: drain_array finds the array touched: clears the flag,
        # frees nothing; the node part is not due
        assert SLAB.cache_reap_one(k, s, 0, nr - 1) == 0
        assert int(k.array_cache[ac, S.ARRAY_CACHE_AVAIL]) == 40
        assert int(k.array_cache[ac, S.ARRAY_CACHE_TOUCHED]) == 0
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_NEXT_REAP) == nr
        # pass 2 at next_reap: drain_array frees (limit + 4) / 5 = 11 objects, the oldest:
        # slabs 0-1 empty (kept: free_objects 11 <= 85), slab 2 with one object left;
        # next_reap moves 4*HZ on; slabs_free was touched: cleared, nothing drained
        assert SLAB.cache_reap_one(k, s, 0, nr) == 0
        assert int(k.array_cache[ac, S.ARRAY_CACHE_AVAIL]) == 29
        assert (_node(k, s, 0, S.KMEM_CACHE_NODE_NR_FREE), _node(k, s, 0, S.KMEM_CACHE_NODE_NR_PARTIAL),
                _node(k, s, 0, S.KMEM_CACHE_NODE_NR_FULL)) == (2, 1, 7)
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_FREE_OBJECTS) == 11
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_NEXT_REAP) == nr + 1000
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_FREE_TOUCHED) == 0
        # pass 3 at next_reap + 999 (not due): 11 more objects, nothing else
        assert SLAB.cache_reap_one(k, s, 0, nr + 999) == 0
        assert int(k.array_cache[ac, S.ARRAY_CACHE_AVAIL]) == 18
        assert (_node(k, s, 0, S.KMEM_CACHE_NODE_NR_FREE), _node(k, s, 0, S.KMEM_CACHE_NODE_NR_PARTIAL),
                _node(k, s, 0, S.KMEM_CACHE_NODE_NR_FULL)) == (5, 1, 4)
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_NEXT_REAP) == nr + 1000
        # pass 4 at next_reap + 1000 (due, untouched): 11 more objects (8 slabs free,
        # free_objects 33), then drain_freelist((85 + 5*4 - 1) / (5*4)) = 5 slabs
        assert SLAB.cache_reap_one(k, s, 0, nr + 1000) == 5
        assert int(k.array_cache[ac, S.ARRAY_CACHE_AVAIL]) == 7
        assert (_node(k, s, 0, S.KMEM_CACHE_NODE_NR_FREE), _node(k, s, 0, S.KMEM_CACHE_NODE_NR_PARTIAL),
                _node(k, s, 0, S.KMEM_CACHE_NODE_NR_FULL)) == (3, 1, 1)
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_FREE_OBJECTS) == 33 - 5 * 4
        assert _node(k, s, 0, S.KMEM_CACHE_NODE_NEXT_REAP) == nr + 2000
        assert int(k.zone[0, S.ZONE_NR_FREE_PAGES]) == free_pages0 + 5
        assert int(k.kmem_cache_cpu[s * 4 + 0, S.CPU_SLAB_STAT + S.STAT_REAPED]) == 5


def test_reap_timer_fires_queues_the_work_and_rearms():
    """CPU 1's timer: not due at 246, due at 247 (its start value): the reap work is
    queued on CPU 1 and reap_next is -1 until the kworker's pass ends, which re-arms it
    at jiffies + round_jiffies_relative(REAPTIMEOUT_AC, 1) and moves slab_reap_node."""
    with _boot() as K:
        k = K.mem
        assert not reap_timer(k, 1, 246)
        assert reap_timer(k, 1, 247)
        assert int(k.cpu[1, S.CPU_REAP_NEXT]) == -1
        assert not reap_timer(k, 1, 5000)  # queued or running: no second work
        msg = np.zeros(k.slots.shape[2] - 1, np.int64)
        assert work_dequeue(k, 1, msg) and msg[0] == WORK_CACHE_REAP
        k.ctl[0, S.CTL_JIFFIES] = 1000  # the pass runs at jiffies 1000
        kw = K.task_of(1, 1)
        _run_op(K, 1, OP_REAP, t=kw, flags=TF_REAP_TIMER)
        assert int(k.cpu[1, S.CPU_REAP_NEXT]) == 1000 + 497
        assert int(k.cpu[1, S.CPU_REAPS]) == 1 and int(k.cpu[1, S.CPU_REAPS_SKIPPED]) == 0
        assert int(k.cpu[1, S.CPU_REAP_NODE]) == 0  # next_reap_node: 1 -> 0
        assert int(k.rcu[0, S.RCU_SLAB_MUTEX_OWNER]) == 0  # slab_mutex released


def test_reap_skipped_while_slab_mutex_is_held():
    """cache_reap: if (!mutex_trylock(&slab_mutex)) goto out; -- nothing is reaped, the
    timer is re-armed for the next period, slab_reap_node stays."""
    with _boot() as K:
        k = K.mem
        s = K.cache("kmalloc-1024")
        o = _run_op(K, 0, OP_ALLOC, s)
        _run_op(K, 0, OP_FREE, obj=o)
        ac = SLAB.ac_cpu(k, s, 0)
        k.array_cache[ac, S.ARRAY_CACHE_TOUCHED] = 0
        k.rcu[0, S.RCU_SLAB_MUTEX_OWNER] = K.task_of(3, 1) + 1  # CPU 3's kworker holds it
        k.ctl[0, S.CTL_JIFFIES] = 1000
        kw = K.task_of(0, 1)
        op_start(k, kw, OP_REAP, -1, NUMA_NO_NODE, 0, 0)
        k.task[kw, S.TASK_FLAGS] |= TF_REAP_TIMER
        assert op_step(k, kw) == STEP_DONE  # one phase: gave up
        assert int(k.cpu[0, S.CPU_REAPS_SKIPPED]) == 1 and int(k.cpu[0, S.CPU_REAPS]) == 0
        # the refill took the new slab's 4 objects, one went out and came back: 4 in the
        # array, untouched, and the skipped pass leaves them there
        assert int(k.array_cache[ac, S.ARRAY_CACHE_AVAIL]) == 4
        assert int(k.cpu[0, S.CPU_REAP_NEXT]) == 1000 + 500
        assert int(k.cpu[0, S.CPU_REAP_NODE]) == 1
        assert int(k.task[kw, S.TASK_OP]) == OP_NONE


def test_deterministic_clock_is_steps_times_step_ns():
    # jiffies = steps * step_ns * HZ / 1e9: 64 steps of 1 ms are 64 ms = 16 jiffies
    with _boot() as K:
        k = K.mem
        k.config[S.CONFIG_STEP_NS] = 1_000_000
        assert tick(k, 64) == 16
        assert tick(k, 64) == 32 and int(k.ctl[0, S.CTL_CLOCK_STEPS]) == 128


def _churn(tmp_path, mode, reap, ops, tag="", duration=None, step_ns=None):
    sc = load_scenario("slab-reap").with_overrides(mode=mode, ops_per_cpu=ops, duration=duration)
    wl = dataclasses.replace(sc.workload, cache_reap=reap)
    if step_ns is not None:
        wl = dataclasses.replace(wl, step_ns=step_ns)
    sc = dataclasses.replace(sc, workload=wl, memcg=dataclasses.replace(sc.memcg, lifetime=20000))
    r = run_scenario(sc, RunOptions(out=str(tmp_path / f"{mode}-{reap}{tag}"), progress=False, quiet=True))
    s = r.summary
    assert s["exit"] == "ok", s["error"]
    assert s["invariants"]["checked"] and s["invariants"]["count"] == 0
    return s


def test_slab_reap_scenario_deterministic(tmp_path):
    """v2-1-3 on SLAB (no patch 8): dead caches keep emptied slabs and arrays, so only
    cache_reap drains them, as v1 of the series relied on.  The same seed with the
    timers off leaks more; every pass is a timer's (no reap_every) and the clock is
    exactly steps * step_ns."""
    on = _churn(tmp_path, "deterministic", True, 300000, step_ns=25000)
    off = _churn(tmp_path, "deterministic", False, 300000, step_ns=25000)
    c = on["clock"]
    assert c["jiffies"] == c["steps"] * c["step_ns"] * HZ // 10**9
    assert c["seconds"] > 10
    r = on["cache_reap"]
    assert r["timer"] and r["runs"] > 0 and all(n >= 4 for n in r["per_cpu"])
    # a CPU reaps at most once per 2 s period from its start at ~1 s
    assert all(n <= c["seconds"] / 2 + 1 for n in r["per_cpu"])
    assert r["slabs_reaped_child_caches"] > 0
    assert off["cache_reap"]["runs"] == 0 and off["cache_reap"]["slabs_reaped"] == 0
    assert on["leaks"]["dead_caches"] < off["leaks"]["dead_caches"]
    assert on["memcg"]["released"] > off["memcg"]["released"]


def test_slab_reap_scenario_parallel_wall_clock(tmp_path):
    """Parallel mode: the timers run on wall time.  Bounded: 2.5 s of running, so the CPUs
    reap about once or twice each (first at ~1 s, then every 2 s)."""
    s = _churn(tmp_path, "parallel", True, 10**9, duration=2.5)
    r = s["cache_reap"]
    assert r["timer"] and s["clock"]["step_ns"] == 0
    # a CPU's first pass is due at about 1 s, the next ones 2 s apart; a host too busy to
    # run a worker for a while delays its passes, never adds one
    secs = s["clock"]["seconds"]
    assert secs >= 2.0
    assert r["runs"] >= 1 and all(n <= 1 + secs / 2 for n in r["per_cpu"]), (r, secs)


def test_slab_reap_scenario_is_reproducible(tmp_path):
    # the deterministic clock is the steps: one seed, the same passes at the same steps
    a = _churn(tmp_path, "deterministic", True, 100000, tag="a", step_ns=25000)
    b = _churn(tmp_path, "deterministic", True, 100000, tag="b", step_ns=25000)
    assert a["cache_reap"]["runs"] > 0
    for key in ("clock", "cache_reap", "leaks", "memcg", "caches", "workload"):
        assert a[key] == b[key], key


def test_virtual_mode_clock_is_the_stepped_cpus_virtual_time():
    # step_ns < 0 (--mode virtual): the machine clock is the vclock row's now, the
    # stepped CPU's virtual ns (run/virtual.py sets it to the earliest CPU's clock at
    # each control point), so jiffies and the reap timers follow virtual time.
    # Trace: now = 0.99 s -> jiffies 247: only CPU 3's timer (armed at 250 - 3*3 = 241)
    # and CPU 2's (244), CPU 1's (247) are due, CPU 0's (250) is not.
    from emulator.machine.machine import VIRTUAL_EXTRA_LOCKS
    from emulator.machine.spinlock import VCLOCK_ROW_FROM_END

    with Kernel(small_topology(node_mib=(8, 8), cpus_per_node=2), "slab",
                extra_locks=VIRTUAL_EXTRA_LOCKS) as K:
        k = K.mem
        k.config[S.CONFIG_STEP_NS] = -1
        vc = k.lock.shape[0] - VCLOCK_ROW_FROM_END
        k.lock[vc, S.VCLOCK_NOW] = 990_000_000
        assert tick(k, 64) == 990_000_000 * HZ // 1_000_000_000 == 247
        assert k.ctl[0, S.CTL_CLOCK_STEPS] == 0  # steps are not the clock here
        assert [reap_timer(k, c, 247) for c in range(4)] == [False, True, True, True]
        k.lock[vc, S.VCLOCK_NOW] = 0  # a CPU behind the others: jiffies never go back
        assert tick(k, 64) == 247
