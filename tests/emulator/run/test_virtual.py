"""Virtual-time mode (emulator/run/virtual.py, spinlock.py's virtual paths, costs.py).

- the event heap pops CPUs in (clock, tie) order;
- lock waits and holds on a hand-worked two-CPU trace, and a third CPU on another node;
- cost accounting: every CPU's clock is the sum of its categories, and the fast paths'
  category is exactly the fast-path events times their costs;
- determinism: two runs give byte-identical summary.json, which names the cost file;
- the topology matters: more CPUs per node, more list_lock contention; a larger remote
  SLIT distance, costlier remote frees.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from emulator.machine import structs as S
from emulator.machine.costs import load_costs
from emulator.machine.spinlock import (VCLOCK_ROW_FROM_END, init_lock, spin_lock, spin_trylock,
                                       spin_unlock, vclock_pos)
from emulator.run.runner import RunOptions, run_scenario
from emulator.run.virtual import CAT, heap_init, heap_sift_down
from emulator.workload.scenario import load_scenario


# -- the heap ------------------------------------------------------------------------------
def test_heap_steps_the_earliest_clock_ties_by_draw():
    rng = np.random.default_rng(5)
    n = 37
    clock = rng.integers(0, 20, n).astype(np.int64)  # many equal clocks
    tie = rng.permutation(n).astype(np.int64)
    heap = np.zeros(n, np.int64)
    heap_init(heap, clock, tie)
    popped = []
    for _ in range(n):
        c = int(heap[0])
        popped.append((int(clock[c]), int(tie[c]), c))
        clock[c] = 1 << 40  # stepped far into the future: out of the way
        heap_sift_down(heap, n, clock, tie, 0)
    assert [p[:2] for p in popped] == sorted(p[:2] for p in popped)
    assert sorted(p[2] for p in popped) == list(range(n))


# -- the lock model on a hand-worked trace -------------------------------------------------
X_CPU, X_SMT, X_PKG, X_NODE, REMOTE, BODY = 7, 9, 51, 60, 143, 45


def _lock_table(rows=8, width=24):
    locks = np.zeros((rows, width), np.int64)
    for r in range(rows):
        init_lock(locks, r, S.LOCK_CLASS_LIST_LOCK, node=0)
        locks[r, S.LOCK_STATS] = S.LOCK_STATS_VIRTUAL
    vc = rows - VCLOCK_ROW_FROM_END
    for r in (vc, vc + 1):
        init_lock(locks, r, S.LOCK_CLASS_OTHER, stats=False)
    locks[vc, S.VCLOCK_X_CPU] = X_CPU
    locks[vc, S.VCLOCK_X_SMT] = X_SMT
    locks[vc, S.VCLOCK_X_PACKAGE] = X_PKG
    locks[vc, S.VCLOCK_X_NODE] = X_NODE
    locks[vc, S.VCLOCK_HOLD_LIST_LOCK] = BODY
    return locks, vc


def _at(locks, vc, cpu, now, pos, node_costs=(X_NODE, REMOTE)):
    locks[vc, S.VCLOCK_NOW] = now
    locks[vc, S.VCLOCK_CPU] = cpu
    locks[vc, S.VCLOCK_POS] = pos
    locks[vc, S.VCLOCK_WAIT] = 0
    locks[vc, S.VCLOCK_XFER] = 0
    for j, v in enumerate(node_costs):
        locks[vc + 1, S.VCLOCK_NODE_COLUMNS[j]] = v


def test_lock_waits_on_a_hand_worked_two_cpu_trace():
    locks, vc = _lock_table()
    p0 = vclock_pos(0, 0, 0)  # cpu 0: node 0, package 0, core 0
    p1 = vclock_pos(0, 0, 1)  # cpu 1: another core of the package
    # cpu 0 at t=100: a first touch (local line, 7): acquired 107, body 45, released 152
    _at(locks, vc, 0, 100, p0)
    spin_lock(locks, 0, 0)
    assert locks[0, S.LOCK_ACQUIRED_AT] == 107
    spin_unlock(locks, 0)
    assert locks[vc, S.VCLOCK_NOW] == 152 and locks[0, S.LOCK_FREE_AT] == 152
    assert locks[0, S.LOCK_CONTENTIONS] == 0
    # cpu 1 at t=120: held until 152 -> a contention; the line comes from cpu 0's core
    # (51): acquired 203, waited 83; released 248
    _at(locks, vc, 1, 120, p1)
    spin_lock(locks, 0, 1)
    assert locks[0, S.LOCK_ACQUIRED_AT] == 203
    assert locks[0, S.LOCK_CONTENTIONS] == 1 and locks[0, S.LOCK_WAIT_TOTAL] == 83
    assert locks[0, S.LOCK_CON_BOUNCES] == 1
    assert locks[vc, S.VCLOCK_WAIT] == 152 - 120 and locks[vc, S.VCLOCK_XFER] == X_PKG
    spin_unlock(locks, 0)
    assert locks[vc, S.VCLOCK_NOW] == 248 and locks[0, S.LOCK_FREE_AT] == 248
    # a trylock by cpu 0 at t=200 fails (held in virtual time); at t=300 it succeeds,
    # uncontended, the line back from cpu 1 (51): acquired 351
    _at(locks, vc, 0, 200, p0)
    assert not spin_trylock(locks, 0, 0)
    _at(locks, vc, 0, 300, p0)
    spin_lock(locks, 0, 0)
    assert locks[0, S.LOCK_ACQUIRED_AT] == 351 and locks[0, S.LOCK_CONTENTIONS] == 1
    spin_unlock(locks, 0)
    # a CPU on node 1 at t=396 (= release time 396): no wait, the remote line (143)
    _at(locks, vc, 2, 396, vclock_pos(1, 1, 2), node_costs=(REMOTE, X_NODE))
    spin_lock(locks, 0, 2)
    assert locks[0, S.LOCK_ACQUIRED_AT] == 396 + REMOTE and locks[0, S.LOCK_CONTENTIONS] == 1
    spin_unlock(locks, 0)
    # every acquisition by another CPU than the last one (the first included, as lock_stat)
    assert locks[0, S.LOCK_ACQUISITIONS] == 4 and locks[0, S.LOCK_ACQ_BOUNCES] == 4
    assert locks[0, S.LOCK_HOLD_TOTAL] == 4 * BODY
    assert locks[0, S.LOCK_WAIT_MIN] == locks[0, S.LOCK_WAIT_MAX] == 83
    assert locks[0, S.LOCK_WORD] == 0


def test_smt_sibling_transfer():
    locks, vc = _lock_table()
    _at(locks, vc, 0, 0, vclock_pos(0, 0, 3))
    spin_lock(locks, 1, 0)
    spin_unlock(locks, 1)
    _at(locks, vc, 5, 1000, vclock_pos(0, 0, 3))  # cpu 5: the same core
    spin_lock(locks, 1, 5)
    assert locks[1, S.LOCK_ACQUIRED_AT] == 1000 + X_SMT
    spin_unlock(locks, 1)


# -- runs ------------------------------------------------------------------------------------
def _topology_file(tmp_path, name, cpus_per_node, remote=20):
    n = cpus_per_node
    text = (f'description = "test"\narch = "x86_64"\npage_size = 4096\ncache_line = 64\n'
            f"distances = [[10, {remote}], [{remote}, 10]]\n"
            f'[[node]]\nid = 0\ncpus = "0-{n - 1}"\nmemory = "64MiB"\npackage = 0\n'
            f'[[node]]\nid = 1\ncpus = "{n}-{2 * n - 1}"\nmemory = "64MiB"\npackage = 1\n')
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return str(p)


def _run(tmp_path, sub, scenario="remote-free", costs=None, **kw):
    sc = load_scenario(scenario).with_overrides(mode="virtual", **kw)
    r = run_scenario(sc, RunOptions(out=str(tmp_path / sub), progress=False, quiet=True,
                                    costs=costs))
    assert r.exit_code == 0, r.summary.get("error")
    return r


def _list_lock(summary):
    acq = sum(l["acquisitions"] for l in summary["locks"] if l["class"] == "list_lock")
    cont = sum(l["contentions"] for l in summary["locks"] if l["class"] == "list_lock")
    return acq, cont


def test_two_runs_give_identical_summaries(tmp_path):
    a = _run(tmp_path, "a", ops_per_cpu=3000)
    b = _run(tmp_path, "b", ops_per_cpu=3000)
    ja = (a.out / "summary.json").read_bytes()
    assert ja == (b.out / "summary.json").read_bytes()
    s = json.loads(ja)
    assert s["mode"] == "virtual" and "host" not in s and "commit" not in s
    assert s["virtual"]["costs"]["name"] == "xeon-2s-2014"
    assert s["virtual"]["costs"]["file"] == "configs/costs/xeon-2s-2014.toml"
    assert s["duration_s"] == round(s["virtual"]["duration_ns"] / 1e9, 9) > 0
    assert (a.out / "host.json").is_file()
    c = _run(tmp_path, "c", ops_per_cpu=3000, seed=3)
    assert (c.out / "summary.json").read_bytes() != ja


def test_cost_accounting_per_category(tmp_path):
    """Each CPU's clock is the sum of its time per category; the fast-path category is
    exactly (fast-path events) x (their costs) over every cache."""
    costs = load_costs(None)
    r = _run(tmp_path, "acc", scenario="local-fastpath", ops_per_cpu=4000)
    v = r.summary["virtual"]
    assert sum(v["per_category_ns"].values()) == sum(v["per_cpu_clock_ns"])
    fast = 0
    for c in r.summary["caches"]:
        st = c.get("stats") or {}
        fast += st.get("ALLOC_FASTPATH", 0) * costs["slub.alloc_fastpath"]
        fast += st.get("FREE_FASTPATH", 0) * costs["slub.free_fastpath"]
    assert fast > 0 and v["per_category_ns"]["fastpath"] == fast
    assert list(v["per_category_ns"]) == list(CAT)


def test_contention_grows_with_cpus_per_node(tmp_path):
    small = _run(tmp_path, "n2", topology=_topology_file(tmp_path, "t2", 2), ops_per_cpu=20000)
    big = _run(tmp_path, "n12", topology=_topology_file(tmp_path, "t12", 12), ops_per_cpu=20000)
    a2, c2 = _list_lock(small.summary)
    a12, c12 = _list_lock(big.summary)
    ops2, ops12 = small.summary["ops"]["total"], big.summary["ops"]["total"]
    assert a2 > 0 and a12 > 0
    assert c12 / ops12 > 2 * (c2 / ops2)  # contentions per op
    assert c12 / a12 > 2 * (c2 / a2)  # ... and per acquisition


def test_remote_slit_distance_costs_remote_frees(tmp_path):
    near = _run(tmp_path, "d20", topology=_topology_file(tmp_path, "d20", 2, remote=20),
                ops_per_cpu=4000)
    far = _run(tmp_path, "d40", topology=_topology_file(tmp_path, "d40", 2, remote=40),
               ops_per_cpu=4000)
    n, f = near.summary["virtual"], far.summary["virtual"]
    assert near.summary["ops"]["total"] == far.summary["ops"]["total"]
    assert f["per_category_ns"]["remote_line"] > 1.5 * n["per_category_ns"]["remote_line"]
    assert f["duration_ns"] > n["duration_ns"]


def test_cost_of_one_allocation_and_its_free_by_hand():
    """One CPU allocates one kmalloc-64 object and frees it.  The allocation misses
    (no slab yet): __slab_alloc's slow path (ALLOC_SLOWPATH, counted once per call as
    3.16 does), a new slab, whose page comes from the
    buddy allocator under zone->lock (a first touch: a local line, then the zone body);
    the free hits the CPU slab: the fast path.  The busy time is exactly that."""
    from emulator.kernel.boot import Kernel
    from emulator.machine.machine import VIRTUAL_EXTRA_LOCKS
    from emulator.run.virtual import RET_BATCH, VirtualClock
    from emulator.workload import generator as G
    from tests.emulator.conftest import small_topology

    topo = small_topology(node_mib=(8,), cpus_per_node=1)
    costs = load_costs(None)
    with Kernel(topo, "slub", live_cap=3, extra_locks=VIRTUAL_EXTRA_LOCKS) as K:
        k = K.mem
        wp = np.zeros(G.WP_NR, np.int64)
        wp[G.WP_LIVE_TARGET] = 1
        wp[G.WP_LIVE_CAP] = 3
        wp[G.WP_BURST] = 1
        wp[G.WP_FREE_AT_END] = 1
        wp[G.WP_BUDGET] = 1
        wp[G.WP_NR_SPECS] = 1
        wp[G.WP_TOTAL_WEIGHT] = 1
        wc = np.zeros((1, G.WC_NR), np.int64)
        wc[0] = (1, 64, K.cache("kmalloc-64"), 1)
        G.seed_workload(k, 1)
        k.ctl[0, :] = 0
        k.ctl[0, S.CTL_NR_WORKERS] = 1
        vt = VirtualClock(K, topo, costs, 1)
        for _ in range(100):
            if vt.run(wp, wc, 4096) != RET_BATCH:
                break
        vt.finish()
        assert k.wl[0, S.WORKLOAD_ALLOCS] == 1 and k.wl[0, S.WORKLOAD_FREES] == 1
        b = vt.breakdown()["per_category_ns"]
        assert b["lock_transfer"] == costs["line.same_cpu"]  # zone->lock, first touch
        assert b["lock_body"] == costs["lock.zone"]
        assert b["lock_wait"] == 0
        assert b["slab_pages"] == costs["slub.alloc_slab"]
        assert b["fastpath"] == costs["slub.free_fastpath"]
        # 3.16 counts ALLOC_SLOWPATH once per __slab_alloc call (slab_alloc_node, since
        # "mm: slub: fix ALLOC_SLOWPATH stat"), the way to new_slab from no slab included
        assert b["slowpath"] == costs["slub.alloc_slowpath"]
        busy = sum(b.values()) - b["idle"]
        assert busy == (costs["line.same_cpu"] + costs["lock.zone"] + costs["slub.alloc_slowpath"]
                        + costs["slub.alloc_slab"] + costs["slub.free_fastpath"])
        assert int(vt.clock[0]) == sum(b.values())


def test_256_cpus_8_nodes_and_a_virtual_duration(tmp_path):
    """Hundreds of emulated CPUs in one process (epyc-nps4: 256 CPUs, 8 nodes, SLIT
    10/12/32), and --duration in virtual seconds: the run stops after 20 virtual us."""
    r = _run(tmp_path, "big", topology="epyc-nps4", ops_per_cpu=200, costs="epyc-rome")
    s = r.summary
    assert s["topology"]["cpus"] == 256 and s["topology"]["nodes"] == 8
    assert s["virtual"]["costs"]["name"] == "epyc-rome"
    assert len(s["virtual"]["per_cpu_clock_ns"]) == 256
    assert min(s["ops"]["per_cpu"]) >= 200
    d = _run(tmp_path, "dur", ops_per_cpu=None, duration=20e-6)
    assert 20_000 <= d.summary["virtual"]["duration_ns"] < 60_000
    assert d.summary["ops"]["total"] > 0


def test_memcg_scenario_is_host_independent(tmp_path):
    # patch 6's creation latency and the jiffies read the machine clock: in virtual mode
    # that is virtual time (kernel/jiffies.py, step_ns -1), so the summary stays
    # byte-identical with memcg churn too
    a = _run(tmp_path, "a", scenario="uaf-race", ops_per_cpu=1500)
    b = _run(tmp_path, "b", scenario="uaf-race", ops_per_cpu=1500)
    ja = (a.out / "summary.json").read_bytes()
    assert ja == (b.out / "summary.json").read_bytes()
    s = json.loads(ja)
    assert s["clock"]["step_ns"] == -1
    assert s["clock"]["jiffies"] == s["virtual"]["duration_ns"] * 250 // 10**9
    assert s["memcg"]["caches_created"] > 0 and s["memcg"]["creation_latency_max_us"] > 0
