"""The invariant checker can fail: every invariant it claims, broken once, is reported.

Every other test asserts `check_kernel(...) == []`; these prove that an empty list means
something.  Module fixtures (SLUB, SLUB with track_full_slabs, SLAB) drive a small
machine (two nodes of two CPUs) by real ops in the deterministic scheduler into a state
where every structure the checker walks is populated, check that the state is clean,
and snapshot the tables.
Each test restores the snapshot, corrupts exactly one fact (sometimes one fact that takes
two words to write, like a slab moved between lists with both counts kept right) and
asserts that the checker reports it with the message naming the invariant.

Invariants are those of emulator/kernel/check.py's module docstring and code:
check_slub_cache, check_slab_cache, walk_node_list, the KASAN shadow rules, the
oracle's live set, and through check_kernel the lock and buddy checkers (whose own
invariants are tested beside their modules: tests/emulator/machine/test_spinlock.py,
tests/emulator/kernel/test_page_alloc.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

from emulator.kernel.check import check_kernel
from emulator.kernel.kasan import KASAN_KMALLOC_FREE
from emulator.kernel.lists import list_add, list_del, walk
from emulator.kernel.ops import OP_ALLOC, OP_FREE, OP_NONE, OP_REAP
from emulator.machine import structs as S
from emulator.machine.machine import list_lock_row
from emulator.run.scripted import RUN_OK, Sched, run

from .slab_harness import make_kernel, run_checked
from .slab_oracle import SlabOracle

CACHE = "test-200"  # 20 objects a slab with either allocator on this topology


# -- snapshots --------------------------------------------------------------------------
def _snapshot(mem) -> dict[str, np.ndarray]:
    return {n: getattr(mem, n).copy() for n in S.MEM_TABLES if n != "ram64"}  # ram64 = ram


def _restore(mem, snap) -> None:
    for n, a in snap.items():
        getattr(mem, n)[...] = a


@dataclass
class State:
    K: object
    s: int  # the cache row every corruption targets
    live: dict  # the oracle's live objects after the script
    snap: dict

    @property
    def mem(self):
        return self.K.mem

    def node(self, nid: int) -> int:
        return self.s * self.K.nr_nodes + nid

    def cpu(self, cpu: int) -> int:
        return self.s * self.K.nr_cpus + cpu

    def check(self) -> list[str]:
        return check_kernel(self.mem, self.K.nr_cpus, self.K.nr_nodes, live=self.live)

    def reports(self, pattern: str) -> list[str]:
        """Assert that some violation matches `pattern` (a regex); return them all."""
        bad = self.check()
        assert any(re.search(pattern, b) for b in bad), f"no {pattern!r} in {bad[:6]}"
        return bad


def _slabs(mem, s) -> list[int]:
    return [int(p) for p in np.flatnonzero(((mem.page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0)
                                           & (mem.page[:, S.PAGE_SLAB_CACHE] == s))]


def _build(allocator: str, rows_of, prepare=None, **kw) -> State:
    K = make_kernel(allocator, **kw)
    try:
        s = K.cache(CACHE)
        if prepare is not None:
            prepare(K, s)
        rows, nslots = rows_of(s)
        _, oracle = run_checked(K, np.array(rows), nslots, 0, check_every=1 << 30)
        st = State(K, s, dict(oracle.live), {})
        assert st.check() == []  # the uncorrupted state is clean
        st.snap = _snapshot(K.mem)
        return st
    except BaseException:
        K.close()
        raise


# -- SLUB -------------------------------------------------------------------------------
def _fc(w: int) -> tuple[int, int, int, bool]:
    """(freelist index + 1, inuse, objects, frozen) of a SLUB slab's packed word."""
    w = int(w)
    return (w & S.SLUB_FC_FREELIST_MASK, (w >> S.SLUB_FC_INUSE_SHIFT) & 0xFFFF,
            (w >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE, bool(w & S.SLUB_FC_FROZEN))


def _set_fc(mem, p, fl=None, inuse=None, frozen=None) -> None:
    f0, u0, objects, z0 = _fc(mem.page[p, S.PAGE_FREELIST])
    fl = f0 if fl is None else fl
    inuse = u0 if inuse is None else inuse
    frozen = z0 if frozen is None else frozen
    mem.page[p, S.PAGE_FREELIST] = (fl | (inuse << S.SLUB_FC_INUSE_SHIFT)
                                    | (objects << S.SLUB_FC_OBJECTS_SHIFT)
                                    | (S.SLUB_FC_FROZEN if frozen else 0))


def _slub_rows(s):
    # CPU 0 fills four and a half slabs.  CPU 2 frees slots 0 and 20 as soon as they
    # are filled: slot 0 while its slab is CPU 0's cpu slab (a remote free onto its page
    # freelist, which CPU 0 takes back for slot 20), slot 20 once that slab is full and
    # no CPU's (__slab_free freezes it and put_cpu_partial()s it on CPU 2).  CPU 0 then
    # allocates on node 1: node mismatch, deactivate_slab() sends its half-used cpu slab
    # to node 0's n->partial and a node 1 slab becomes its c->page.
    n = 90
    rows = [[0, OP_ALLOC, s, -1, i, 0] for i in range(n)]
    rows += [[2, OP_FREE, -1, -1, i, 0] for i in (0, 20)]
    rows += [[0, OP_ALLOC, s, 1, n, 0]]
    return rows, n + 1


@dataclass
class SlubFacts:
    st: State
    cpu_page: int  # CPU 0's c->page, with objects on its c->freelist
    cpu_partial: int  # head of CPU 2's partial list
    node_partial: int  # the slab on node 0's n->partial
    full: int  # a full slab on no list

    def __getattr__(self, name):
        return getattr(self.st, name)

    def pfn(self, a) -> int:
        return a >> int(self.mem.machine[0, S.MACHINE_PAGE_SHIFT])

    def obj(self, p, i) -> int:
        shift = int(self.mem.machine[0, S.MACHINE_PAGE_SHIFT])
        return (p << shift) + i * int(self.mem.kmem_cache[self.s, S.KMEM_CACHE_SIZE])

    def next_free(self, a) -> int:
        return int(self.mem.ram64[(a + int(self.mem.kmem_cache[self.s, S.KMEM_CACHE_OFFSET])) >> 3])

    def set_next_free(self, a, nxt) -> None:
        self.mem.ram64[(a + int(self.mem.kmem_cache[self.s, S.KMEM_CACHE_OFFSET])) >> 3] = nxt

    def chain(self, head) -> list[int]:
        out = []
        while head:
            out.append(head)
            head = self.next_free(head)
        return out

    def page_freelist(self, p) -> list[int]:
        fl = _fc(self.mem.page[p, S.PAGE_FREELIST])[0]
        return self.chain(self.obj(p, fl - 1)) if fl else []

    def cfl(self, cpu=0) -> list[int]:
        return self.chain(int(self.mem.kmem_cache_cpu[self.cpu(cpu), S.KMEM_CACHE_CPU_FREELIST]))


def _slub_facts(st: State) -> SlubFacts:
    m, s = st.mem, st.s
    cpu_page = int(m.kmem_cache_cpu[st.cpu(0), S.KMEM_CACHE_CPU_PAGE])
    cpu_partial = int(m.kmem_cache_cpu[st.cpu(2), S.KMEM_CACHE_CPU_PARTIAL])
    partial = walk(m.page, m.kmem_cache_node, st.node(0), S.KMEM_CACHE_NODE_PARTIAL_HEAD)
    full = [p for p in _slabs(m, s) if _fc(m.page[p, S.PAGE_FREELIST])[0] == 0
            and not _fc(m.page[p, S.PAGE_FREELIST])[3]]
    f = SlubFacts(st, cpu_page, cpu_partial, partial[0] if partial else 0, full[0] if full else 0)
    # the script built what the tests corrupt
    assert cpu_page and m.page[cpu_page, S.PAGE_NODE] == 1 and len(f.cfl()) > 2
    assert cpu_partial and _fc(m.page[cpu_partial, S.PAGE_FREELIST])[3]
    assert len(partial) == 1 and 0 < _fc(m.page[partial[0], S.PAGE_FREELIST])[1] < 20
    assert len(f.page_freelist(f.node_partial)) > 2
    assert len(full) >= 2
    return f


@pytest.fixture(scope="module")
def slub_state():
    st = _build("slub", _slub_rows)
    yield st
    st.K.close()


@pytest.fixture(scope="module")
def slub_full_state():
    st = _build("slub", _slub_rows, track_full_slabs=True)
    yield st
    st.K.close()


@pytest.fixture
def slub(slub_state) -> SlubFacts:
    _restore(slub_state.mem, slub_state.snap)
    return _slub_facts(slub_state)


def test_clean_states_report_nothing(slub, slub_full_state):
    assert slub.check() == []
    _restore(slub_full_state.mem, slub_full_state.snap)
    assert slub_full_state.check() == []


# every object is in exactly one place
@pytest.mark.parametrize("where", ["c->freelist", "page freelist"])
def test_slub_object_twice_on_a_freelist(slub, where):
    if where == "c->freelist":
        objs, label = slub.cfl(), "c->freelist of cpu 0"
    else:
        objs, label = slub.page_freelist(slub.node_partial), f"page freelist of {slub.node_partial}"
    slub.set_next_free(objs[-1], objs[1])  # the tail's next is the second: it recurs
    slub.reports(rf"object {objs[1]:#x} both {label} and {label}$")


def test_slub_object_on_the_page_freelist_and_a_c_freelist(slub):
    # a remote free onto the cpu slab's page freelist of an object still on c->freelist
    p, objs = slub.cpu_page, slub.cfl()
    idx = (objs[-1] - slub.obj(p, 0)) // int(slub.mem.kmem_cache[slub.s, S.KMEM_CACHE_SIZE])
    _, inuse, _, _ = _fc(slub.mem.page[p, S.PAGE_FREELIST])
    _set_fc(slub.mem, p, fl=idx + 1, inuse=inuse - 1)
    slub.reports(rf"object {objs[-1]:#x} both c->freelist of cpu 0 and page freelist of {p}")


@pytest.mark.parametrize("bad", ["misaligned", "other slab"])
def test_slub_freelist_pointer_to_no_object(slub, bad):
    objs = slub.page_freelist(slub.node_partial)
    target = objs[1] + 8 if bad == "misaligned" else slub.obj(slub.full, 3)
    slub.set_next_free(objs[0], target)
    slub.reports(rf"page freelist of {slub.node_partial}: {target:#x} is no object of slab {slub.node_partial}")


def test_slub_lost_object_is_not_the_oracles(slub):
    # an object dropped from c->freelist is neither free nor allocated by anyone
    objs = slub.cfl()
    slub.mem.kmem_cache_cpu[slub.cpu(0), S.KMEM_CACHE_CPU_FREELIST] = objs[1]
    slub.reports(rf"allocated objects differ from the oracle: missing \[\], unexpected \['{objs[0]:#x}'\]")


def test_slub_object_freed_behind_the_oracles_back(slub):
    # a live object pushed on its slab's page freelist, inuse kept right
    p = slub.node_partial
    a = next(a for a in sorted(slub.live) if slub.pfn(a) == p)
    fl, inuse, _, _ = _fc(slub.mem.page[p, S.PAGE_FREELIST])
    slub.set_next_free(a, slub.obj(p, fl - 1))
    size = int(slub.mem.kmem_cache[slub.s, S.KMEM_CACHE_SIZE])
    _set_fc(slub.mem, p, fl=(a - slub.obj(p, 0)) // size + 1, inuse=inuse - 1)
    bad = slub.reports(rf"allocated objects differ from the oracle: missing \['{a:#x}'\], unexpected \[\]")
    assert any(re.search(rf"free object {a:#x} has shadow", b) for b in bad)  # KASAN too


# per slab: inuse + length(page freelist) == objects
@pytest.mark.parametrize("delta", [1, -1])
def test_slub_inuse_disagrees_with_the_freelist(slub, delta):
    p = slub.node_partial
    _, inuse, objects, _ = _fc(slub.mem.page[p, S.PAGE_FREELIST])
    nfree = len(slub.page_freelist(p))
    _set_fc(slub.mem, p, inuse=inuse + delta)
    slub.reports(rf"slab {p}: inuse {inuse + delta} \+ free {nfree} != objects {objects}")


# per-CPU slabs and partial lists
def test_slub_c_freelist_without_c_page(slub):
    slub.mem.kmem_cache_cpu[slub.cpu(0), S.KMEM_CACHE_CPU_PAGE] = 0
    slub.reports(r"cpu 0 has a c->freelist without c->page")


def test_slub_c_page_not_a_slab_of_the_cache(slub):
    other = _slabs(slub.mem, slub.K.cache("kmalloc-64"))
    p = other[0] if other else slub.full + 1000  # a slab of another cache, or a free frame
    slub.mem.kmem_cache_cpu[slub.cpu(0), S.KMEM_CACHE_CPU_PAGE] = p
    slub.reports(rf"cpu 0 c->page {p} is not a slab of the cache")


def test_slub_cpu_partial_list_loops(slub):
    slub.mem.page[slub.cpu_partial, S.PAGE_NEXT] = slub.cpu_partial
    slub.reports(r"cpu 2 partial list loops")


def test_slub_cpu_partial_list_holds_a_stranger(slub):
    slub.mem.page[slub.cpu_partial, S.PAGE_NEXT] = 1  # the node's first frame: no slab
    slub.reports(r"cpu 2 partial list holds 1, not a slab of the cache")


# every slab in exactly one place; frozen exactly when a CPU owns it
def test_slub_one_slab_two_cpus(slub):
    slub.mem.kmem_cache_cpu[slub.cpu(1), S.KMEM_CACHE_CPU_PAGE] = slub.cpu_page
    slub.reports(rf"slab {slub.cpu_page} is on 2 lists: \['c->page of cpu 0', 'c->page of cpu 1'\]")


def test_slub_cpu_partial_slab_also_on_the_node_list(slub):
    m = slub.mem
    n = slub.node(0)
    head = int(m.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD])
    m.page[head, S.PAGE_LRU_PREV] = slub.cpu_partial
    m.page[slub.cpu_partial, S.PAGE_LRU_NEXT] = head
    m.page[slub.cpu_partial, S.PAGE_LRU_PREV] = 0
    m.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD] = slub.cpu_partial
    m.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_PARTIAL] += 1
    slub.reports(rf"slab {slub.cpu_partial} is on 2 lists: \['partial list of cpu 2', 'node 0 partial'\]")


def test_slub_frozen_slab_no_cpu_owns(slub):
    _set_fc(slub.mem, slub.full, frozen=True)
    slub.reports(rf"slab {slub.full} is frozen but no CPU owns it")


@pytest.mark.parametrize("owner", ["c->page of cpu 0", "partial list of cpu 2"])
def test_slub_unfrozen_slab_a_cpu_owns(slub, owner):
    p = slub.cpu_page if owner.startswith("c->page") else slub.cpu_partial
    _set_fc(slub.mem, p, frozen=False)
    slub.reports(rf"slab {p} is not frozen but is {owner}$")


def test_slub_slab_with_free_objects_on_no_list(slub):
    # unlinked from n->partial with the count kept right: lost to the allocator
    m, n, p = slub.mem, slub.node(0), slub.node_partial
    list_del(m.page, m.kmem_cache_node, n, S.KMEM_CACHE_NODE_PARTIAL_HEAD,
             S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, p)
    nfree = len(slub.page_freelist(p))
    bad = slub.reports(rf"slab {p} has {nfree} free objects but is on no partial list")
    assert not any("count" in b for b in bad)


def test_slub_full_slab_on_a_partial_list(slub):
    m, n = slub.mem, slub.node(0)
    list_add(m.page, m.kmem_cache_node, n, S.KMEM_CACHE_NODE_PARTIAL_HEAD,
             S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, slub.full)
    slub.reports(rf"full slab {slub.full} on a partial list")


def test_slub_frozen_slab_on_the_node_partial_list(slub):
    _set_fc(slub.mem, slub.node_partial, frozen=True)
    slub.reports(rf"slab {slub.node_partial} is frozen but no CPU owns it")


# node lists (walk_node_list): entries, prev links, node, loops, counts
@pytest.mark.parametrize("field,label", [(S.KMEM_CACHE_NODE_NR_PARTIAL, "partial"),
                                         (S.KMEM_CACHE_NODE_NR_FULL, "full")])
def test_slub_node_list_count(slub, field, label):
    n = slub.node(0)
    listed = int(slub.mem.kmem_cache_node[n, field])
    slub.mem.kmem_cache_node[n, field] += 1
    slub.reports(rf"node 0 {label} count {listed + 1} != {listed} listed")


def test_slub_node_list_bad_prev_link(slub):
    slub.mem.page[slub.node_partial, S.PAGE_LRU_PREV] = slub.full
    slub.reports(rf"node 0 partial list: bad prev link at {slub.node_partial}")


def test_slub_node_list_wrong_node(slub):
    # node 0's partial slab list_del()ed and list_add()ed to node 1's n->partial
    m, p = slub.mem, slub.node_partial
    list_del(m.page, m.kmem_cache_node, slub.node(0), S.KMEM_CACHE_NODE_PARTIAL_HEAD,
             S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, p)
    list_add(m.page, m.kmem_cache_node, slub.node(1), S.KMEM_CACHE_NODE_PARTIAL_HEAD,
             S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, p)
    bad = slub.reports(rf"slab {p} of node 0 on node 1's partial list")
    assert not any("count" in b for b in bad)


def test_slub_node_list_holds_a_stranger(slub):
    m, n = slub.mem, slub.node(0)
    m.page[slub.node_partial, S.PAGE_LRU_NEXT] = 1
    slub.reports(r"node 0 partial list holds 1, not a slab of the cache")


def test_slub_node_list_loops(slub):
    slub.mem.page[slub.node_partial, S.PAGE_LRU_NEXT] = slub.node_partial
    slub.reports(r"node 0 partial list loops")


# per node: nr_slabs and total_objects equal what the slab pages say
@pytest.mark.parametrize("field,label", [(S.KMEM_CACHE_NODE_NR_SLABS, "nr_slabs"),
                                         (S.KMEM_CACHE_NODE_TOTAL_OBJECTS, "total_objects")])
@pytest.mark.parametrize("nid", [0, 1])
def test_slub_node_totals(slub, field, label, nid):
    n = slub.node(nid)
    want = int(slub.mem.kmem_cache_node[n, field])
    slub.mem.kmem_cache_node[n, field] -= 1
    slub.reports(rf"cache {slub.s}: node {nid} {label} {want - 1} != {want}$")


# track_full_slabs: the full list
@pytest.fixture
def slub_full(slub_full_state) -> State:
    _restore(slub_full_state.mem, slub_full_state.snap)
    return slub_full_state


def test_slub_full_slab_missing_from_the_full_list(slub_full):
    m, n = slub_full.mem, slub_full.node(0)
    full = walk(m.page, m.kmem_cache_node, n, S.KMEM_CACHE_NODE_FULL_HEAD)
    assert len(full) >= 2
    list_del(m.page, m.kmem_cache_node, n, S.KMEM_CACHE_NODE_FULL_HEAD,
             S.KMEM_CACHE_NODE_FULL_TAIL, S.KMEM_CACHE_NODE_NR_FULL, full[1])
    slub_full.reports(rf"full slab {full[1]} missing from the full list")


def test_slub_full_list_count(slub_full):
    n = slub_full.node(0)
    listed = int(slub_full.mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_FULL])
    assert listed >= 2
    slub_full.mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_FULL] -= 1
    slub_full.reports(rf"node 0 full count {listed - 1} != {listed} listed")


def test_slub_partial_slab_on_the_full_list(slub_full):
    m, n = slub_full.mem, slub_full.node(0)
    p = int(m.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD])
    assert p
    list_del(m.page, m.kmem_cache_node, n, S.KMEM_CACHE_NODE_PARTIAL_HEAD,
             S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, p)
    list_add(m.page, m.kmem_cache_node, n, S.KMEM_CACHE_NODE_FULL_HEAD,
             S.KMEM_CACHE_NODE_FULL_TAIL, S.KMEM_CACHE_NODE_NR_FULL, p)
    slub_full.reports(rf"slab {p} has \d+ free objects but is on no partial list")


# KASAN: free objects poisoned KASAN_KMALLOC_FREE, allocated ones accessible
def test_slub_free_object_not_poisoned(slub):
    a = slub.cfl()[2]
    slub.mem.shadow[a >> 3] = 0
    slub.reports(rf"free object {a:#x} has shadow 0x0")


def test_slub_allocated_object_poisoned(slub):
    a = next(a for a in sorted(slub.live) if slub.pfn(a) == slub.full)
    slub.mem.shadow[a >> 3] = KASAN_KMALLOC_FREE
    slub.reports(rf"allocated object {a:#x} has shadow {KASAN_KMALLOC_FREE:#x}")


# through check_kernel: locks free with consistent lock_stat, buddy invariants
def test_list_lock_held_at_a_quiescent_point(slub):
    row = int(slub.mem.kmem_cache_node[slub.node(1), S.KMEM_CACHE_NODE_LIST_LOCK])
    assert row == list_lock_row(slub.K.nr_nodes, slub.s, 1)
    slub.mem.lock[row, S.LOCK_WORD] = 3  # held by CPU 2
    slub.reports(rf"^lock {row}: lock is held at a quiescent point$")


def test_lock_stat_broken_through_check_kernel(slub):
    row = list_lock_row(slub.K.nr_nodes, slub.s, 0)
    acq = int(slub.mem.lock[row, S.LOCK_ACQUISITIONS])
    assert acq > 0
    slub.mem.lock[row, S.LOCK_ACQ_BOUNCES] = acq + 1
    slub.reports(rf"^lock {row}: acq_bounces > acquisitions$")


def test_buddy_broken_through_check_kernel(slub):
    z = slub.mem.zone
    want = int(z[1, S.ZONE_NR_FREE_PAGES])
    z[1, S.ZONE_NR_FREE_PAGES] += 1
    slub.reports(rf"^node 1: nr_free_pages {want + 1} != {want} listed$")


# -- SLAB -------------------------------------------------------------------------------
def _slab_rows(s):
    # CPU 0 allocates 300 objects (15 slabs), frees 100 into its array_cache and reaps
    # three times (drain_array: objects back to their slabs, some slabs partial); CPU 2
    # frees 5 of node 0's objects into its alien array; CPU 1, once the last object is
    # allocated, frees 135 (its array overflows: cache_flusharray into the shared array).
    n = 300
    rows = [[0, OP_ALLOC, s, -1, i, 0] for i in range(n)]
    rows += [[0, OP_FREE, -1, -1, i, 0] for i in range(100)]
    rows += [[2, OP_FREE, -1, -1, i, 0] for i in range(100, 105)]
    rows += [[0, OP_REAP, -1, -1, -1, 0]] * 3
    rows += [[1, OP_FREE, -1, -1, i, 0] for i in range(n - 1, 164, -1)]
    return rows, n


def _slab_reap_due(K, s):
    """A machine clock for the scripted run at 4 s per step (1000 jiffies, REAPTIMEOUT_NODE),
    so that every cache_reap above also runs its per-node part (the shared array,
    drain_freelist), as timer passes far enough apart would."""
    K.mem.config[S.CONFIG_STEP_NS] = 4_000_000_000


@dataclass
class SlabFacts:
    st: State
    num: int
    partial: list  # node 0's slabs_partial
    full: list  # node 0's slabs_full
    ac0: int  # CPU 0's array_cache row
    ac1: int
    shared0: int  # node 0's shared array row
    alien10: int  # node 1's alien array for node 0's objects

    def __getattr__(self, name):
        return getattr(self.st, name)

    def avail(self, row) -> int:
        return int(self.mem.array_cache[row, S.ARRAY_CACHE_AVAIL])

    def free_idx(self, p) -> list[int]:
        """The slab's freelist entries [active, num): its free objects' indices."""
        m = self.mem
        a = int(m.page[p, S.PAGE_FREELIST])
        w = int(m.kmem_cache[self.s, S.KMEM_CACHE_FREELIST_IDX_SIZE])
        active = int(m.page[p, S.PAGE_COUNTERS])
        return [int(m.ram[a + i]) if w == 1 else int(m.ram[a + 2 * i]) | (int(m.ram[a + 2 * i + 1]) << 8)
                for i in range(active, self.num)]

    def set_free_idx(self, p, i, idx) -> None:
        m = self.mem
        a = int(m.page[p, S.PAGE_FREELIST])
        if int(m.kmem_cache[self.s, S.KMEM_CACHE_FREELIST_IDX_SIZE]) == 1:
            m.ram[a + i] = idx
        else:
            m.ram[a + 2 * i] = idx & 0xFF
            m.ram[a + 2 * i + 1] = idx >> 8

    def obj(self, p, idx) -> int:
        shift = int(self.mem.machine[0, S.MACHINE_PAGE_SHIFT])
        return (p << shift) + int(self.mem.page[p, S.PAGE_S_MEM]) + \
            idx * int(self.mem.kmem_cache[self.s, S.KMEM_CACHE_SIZE])

    def move(self, p, src: str, dst: str) -> None:
        """list_del from node 0's slabs_<src>, list_add to slabs_<dst>, counts kept."""
        m, n = self.mem, self.node(0)
        f = {"partial": (S.KMEM_CACHE_NODE_PARTIAL_HEAD, S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL),
             "full": (S.KMEM_CACHE_NODE_FULL_HEAD, S.KMEM_CACHE_NODE_FULL_TAIL, S.KMEM_CACHE_NODE_NR_FULL),
             "free": (S.KMEM_CACHE_NODE_FREE_HEAD, S.KMEM_CACHE_NODE_FREE_TAIL, S.KMEM_CACHE_NODE_NR_FREE)}
        list_del(m.page, m.kmem_cache_node, n, *f[src], p)
        if dst:
            list_add(m.page, m.kmem_cache_node, n, *f[dst], p)


def _slab_facts(st: State) -> SlabFacts:
    m = st.mem
    nodes = st.K.nr_nodes
    f = SlabFacts(
        st, int(m.kmem_cache[st.s, S.KMEM_CACHE_OBJECTS]),
        walk(m.page, m.kmem_cache_node, st.node(0), S.KMEM_CACHE_NODE_PARTIAL_HEAD),
        walk(m.page, m.kmem_cache_node, st.node(0), S.KMEM_CACHE_NODE_FULL_HEAD),
        st.cpu(0), st.cpu(1), int(m.kmem_cache_node[st.node(0), S.KMEM_CACHE_NODE_SHARED]),
        int(m.kmem_cache_node[st.node(1), S.KMEM_CACHE_NODE_ALIEN]) + 0)  # + remote node 0
    assert nodes == 2 and f.num == 20
    assert len(f.partial) >= 2 and len(f.full) >= 2
    assert all(0 < m.page[p, S.PAGE_COUNTERS] < f.num for p in f.partial)
    for row in (f.ac0, f.ac1, f.shared0, f.alien10):  # every kind of array holds objects
        assert 2 <= f.avail(row) < int(m.array_cache[row, S.ARRAY_CACHE_LIMIT])
    return f


@pytest.fixture(scope="module")
def slab_state():
    st = _build("slab", _slab_rows, prepare=_slab_reap_due)
    yield st
    st.K.close()


@pytest.fixture
def slab(slab_state) -> SlabFacts:
    _restore(slab_state.mem, slab_state.snap)
    return _slab_facts(slab_state)


def test_slab_clean_state_reports_nothing(slab):
    assert slab.check() == []


# per slab: 0 <= active <= num; its freelist [active, num) a set of object indices
def test_slab_active_out_of_range(slab):
    p = slab.full[0]
    slab.mem.page[p, S.PAGE_COUNTERS] = slab.num + 1
    slab.reports(rf"slab {p} active {slab.num + 1} outside 0..{slab.num}")


@pytest.mark.parametrize("bad", ["duplicate", "out of range"])
def test_slab_freelist_not_a_set_of_indices(slab, bad):
    p = slab.partial[0]
    idxs = slab.free_idx(p)
    assert len(idxs) >= 2
    active = int(slab.mem.page[p, S.PAGE_COUNTERS])
    slab.set_free_idx(p, active + 1, idxs[0] if bad == "duplicate" else slab.num)
    slab.reports(rf"slab {p} freelist \[.*\] is not a set of object indices")


# every slab on the list its active count says, on exactly one list
@pytest.mark.parametrize("src,dst", [("full", "partial"), ("partial", "full"), ("partial", "free")])
def test_slab_on_the_wrong_list(slab, src, dst):
    p = (slab.full if src == "full" else slab.partial)[0]
    slab.move(p, src, dst)
    active = int(slab.mem.page[p, S.PAGE_COUNTERS])
    bad = slab.reports(rf"slab {p} with active {active} on slabs_{dst}$")
    assert not any("count" in b for b in bad)


def test_slab_on_no_list(slab):
    p = slab.partial[1]
    slab.move(p, "partial", None)
    slab.reports(rf"slab {p} is on 0 lists")


@pytest.mark.parametrize("field,label", [(S.KMEM_CACHE_NODE_NR_PARTIAL, "partial"),
                                         (S.KMEM_CACHE_NODE_NR_FULL, "full"),
                                         (S.KMEM_CACHE_NODE_NR_FREE, "free")])
def test_slab_node_list_count(slab, field, label):
    n = slab.node(0)
    listed = int(slab.mem.kmem_cache_node[n, field])
    slab.mem.kmem_cache_node[n, field] += 1
    slab.reports(rf"node 0 slabs_{label} count {listed + 1} != {listed} listed")


def test_slab_node_list_bad_prev_link(slab):
    p = slab.full[1]
    slab.mem.page[p, S.PAGE_LRU_PREV] = 0  # as if it were the head; it follows full[0]
    slab.reports(rf"node 0 slabs_full list: bad prev link at {p}")


# per node: free_objects == sum(num - active), nr_slabs
@pytest.mark.parametrize("field,label", [(S.KMEM_CACHE_NODE_FREE_OBJECTS, "free_objects"),
                                         (S.KMEM_CACHE_NODE_NR_SLABS, "nr_slabs")])
def test_slab_node_totals(slab, field, label):
    n = slab.node(0)
    want = int(slab.mem.kmem_cache_node[n, field])
    slab.mem.kmem_cache_node[n, field] += 1
    slab.reports(rf"cache {slab.s}: node 0 {label} {want + 1} != {want}$")


# array caches: avail <= limit; entries objects of the cache, free nowhere else
@pytest.mark.parametrize("which", ["ac0", "shared0", "alien10"])
def test_slab_avail_over_limit(slab, which):
    row = getattr(slab, which)
    limit = int(slab.mem.array_cache[row, S.ARRAY_CACHE_LIMIT])
    slab.mem.array_cache[row, S.ARRAY_CACHE_AVAIL] = limit + 1
    slab.reports(rf"avail {limit + 1} > limit {limit}$")


def test_slab_avail_negative(slab):
    slab.mem.array_cache[slab.ac0, S.ARRAY_CACHE_AVAIL] = -1
    slab.reports(r"array of cpu 0 avail -1 < 0$")


def test_slab_array_entry_no_object(slab):
    a = int(slab.mem.ac_entry[slab.ac0, 0])
    slab.mem.ac_entry[slab.ac0, 0] = a + 8
    slab.reports(rf"array of cpu 0 holds {a + 8:#x}, no object of the cache")


def test_slab_object_in_an_array_and_free_in_its_slab(slab):
    p = slab.partial[0]
    a = slab.obj(p, slab.free_idx(p)[0])
    k = slab.avail(slab.ac0)
    slab.mem.ac_entry[slab.ac0, k] = a
    slab.mem.array_cache[slab.ac0, S.ARRAY_CACHE_AVAIL] = k + 1
    slab.reports(rf"object {a:#x} both free in slab {p} and in the array of cpu 0$")


@pytest.mark.parametrize("which,label", [("ac1", "array of cpu 1"),
                                         ("shared0", "shared array of node 0"),
                                         ("alien10", "alien array of node 1 for node 0")])
def test_slab_object_in_two_arrays(slab, which, label):
    a = int(slab.mem.ac_entry[slab.ac0, 0])
    row = getattr(slab, which)
    k = slab.avail(row)
    slab.mem.ac_entry[row, k] = a
    slab.mem.array_cache[row, S.ARRAY_CACHE_AVAIL] = k + 1
    slab.reports(rf"object {a:#x} both array of cpu 0 and in the {label}$")


def test_slab_lost_object_is_not_the_oracles(slab):
    k = slab.avail(slab.ac0)
    a = int(slab.mem.ac_entry[slab.ac0, k - 1])
    slab.mem.array_cache[slab.ac0, S.ARRAY_CACHE_AVAIL] = k - 1
    slab.reports(rf"allocated objects differ from the oracle: missing \[\], unexpected \['{a:#x}'\]")


def test_slab_object_freed_behind_the_oracles_back(slab):
    # a live object onto CPU 1's array, without the free path
    a = sorted(slab.live)[0]
    k = slab.avail(slab.ac1)
    slab.mem.ac_entry[slab.ac1, k] = a
    slab.mem.array_cache[slab.ac1, S.ARRAY_CACHE_AVAIL] = k + 1
    slab.reports(rf"allocated objects differ from the oracle: missing \['{a:#x}'\], unexpected \[\]")


def test_slab_free_object_not_poisoned(slab):
    a = int(slab.mem.ac_entry[slab.shared0, 0])
    slab.mem.shadow[a >> 3] = 0
    slab.reports(rf"free object {a:#x} has shadow 0x0")


def test_slab_allocated_object_poisoned(slab):
    a = sorted(slab.live)[-1]
    slab.mem.shadow[a >> 3] = KASAN_KMALLOC_FREE
    slab.reports(rf"allocated object {a:#x} has shadow {KASAN_KMALLOC_FREE:#x}")


# -- the oracle's object-boundary rule ---------------------------------------------------
@pytest.mark.parametrize("allocator", ["slub", "slab"])
def test_oracle_rejects_the_object_past_the_last(allocator, slub_state, slab_state):
    st = slub_state if allocator == "slub" else slab_state
    _restore(st.mem, st.snap)
    K = st.K
    p = _slabs(K.mem, st.s)[0]
    shift = int(K.mem.machine[0, S.MACHINE_PAGE_SHIFT])
    size = int(K.mem.kmem_cache[st.s, S.KMEM_CACHE_SIZE])
    first = (p << shift) + int(K.mem.page[p, S.PAGE_S_MEM])
    assert (first + 20 * size) >> shift == p  # the address past the last is in the page
    o = SlabOracle(K, lambda size: -1)
    o.alloc(st.s, 0, first + 19 * size)  # the last object of a 20-object slab
    assert o.errors == []
    o.alloc(st.s, 0, first + 20 * size)  # inside the page, past the last object
    assert o.errors == [f"{first + 20 * size:#x} is not an object boundary of cache {st.s}"]


# -- ops in flight ------------------------------------------------------------------------
def test_slub_in_flight_free_is_exempt_and_only_while_in_flight(slub):
    # CPU 2 frees an object of a full slab: after __slab_free's cmpxchg the object is on
    # the page freelist and the slab freshly frozen, on its way to put_cpu_partial, with
    # no CPU owning it yet; the checker accepts that only for the task holding them.
    m = slub.mem
    a = next(a for a in sorted(slub.live) if slub.pfn(a) == slub.full)
    sched = Sched.new(np.array([[2, OP_FREE, -1, -1, -1, a]]), slub.K.nr_cpus, 1, 0)
    t = slub.K.task_of(2)
    for _ in range(10):
        assert run(m, sched, budget=1) == RUN_OK
        if m.task[t, S.TASK_OP] == OP_FREE and m.task[t, S.TASK_PHASE] == 3:
            break
    else:
        raise AssertionError("the free never reached put_cpu_partial")
    assert _fc(m.page[slub.full, S.PAGE_FREELIST])[3]  # frozen, no CPU's yet
    assert slub.check() == []  # `live` still holds a: its free has not completed
    m.task[t, S.TASK_OP] = OP_NONE  # forget the op in flight
    bad = slub.reports(rf"slab {slub.full} is frozen but no CPU owns it")
    assert any(re.search(rf"missing \['{a:#x}'\]", b) for b in bad)
