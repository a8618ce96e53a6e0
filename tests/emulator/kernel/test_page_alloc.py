"""The buddy allocator against a set-of-pages oracle, with hypothesis."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.kernel.kasan import KASAN_FREE_PAGE, kasan_check
from emulator.kernel.page_alloc import (
    FREE_BAD_PAGE,
    FREE_OK,
    __GFP_COMP,
    __GFP_THISNODE,
    __free_pages,
    _free_list_add,
    _free_list_del,
    alloc_pages_node,
    check_buddy,
    compound_head,
    free_area_init,
    set_fail_injection,
    zone_stats,
)
from emulator.machine.machine import Machine, MachineConfig
from emulator.machine.structs import (
    MAX_ORDER,
    PAGE_FLAGS,
    PAGE_LRU_NEXT,
    PAGE_LRU_PREV,
    PAGE_NODE,
    PAGE_PRIVATE,
    PG_BUDDY,
    ZONE_FREE_HEAD_0,
    ZONE_NR_FREE_0,
    ZONE_NR_FREE_PAGES,
    ZONE_START_PFN,
)

from ..conftest import small_topology

# Three nodes: 0 and 1 are close (12), 2 is far (30); node 1 has little memory.
DIST = ((10, 12, 30), (12, 10, 30), (30, 30, 10))
NODE_MIB = (4, 1, 4)


@pytest.fixture(scope="module")
def machine():
    topo = small_topology(node_mib=NODE_MIB, distances=DIST)
    with Machine(topo, MachineConfig(inbox_capacity=8)) as m:
        m.topo = topo
        yield m


def _boot(m):
    free_area_init(m.mem, m.topo, m.layout.meta["node_ranges"])
    for nid in range(3):
        set_fail_injection(m.mem, nid)
    return [zone_stats(m.mem, n)["free_per_order"] for n in range(3)]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 2), st.integers(0, 5), st.booleans(),
                  st.booleans()),
        st.tuples(st.just("free"), st.integers(0, 10_000)),
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=ops)
def test_random_alloc_free_matches_oracle(machine, seq):
    m = machine
    initial = _boot(m)
    ranges = m.layout.meta["node_ranges"]
    live = {}  # head pfn -> (order, node)
    owner = {}  # pfn -> head
    for op in seq:
        if op[0] == "alloc":
            _, nid, order, thisnode, comp = op
            gfp = (__GFP_THISNODE if thisnode else 0) | (__GFP_COMP if comp else 0)
            pfn = int(alloc_pages_node(m.mem, nid, order, gfp, 0))
            if pfn < 0:
                continue
            node = int(m.mem.page[pfn, PAGE_NODE])
            start, pages = ranges[node]
            assert start <= pfn and pfn + (1 << order) <= start + pages
            assert (pfn - start) % (1 << order) == 0
            if thisnode:
                assert node == nid
            for p in range(pfn, pfn + (1 << order)):
                assert p not in owner, "page handed out twice"
                owner[p] = pfn
                if comp:
                    assert compound_head(m.mem, p) == pfn
            assert kasan_check(m.mem.shadow, pfn * 4096, (1 << order) * 4096) == 0
            live[pfn] = (order, node)
        elif live:
            pfn = sorted(live)[op[1] % len(live)]
            order, _ = live.pop(pfn)
            assert __free_pages(m.mem, pfn, order, 1) == FREE_OK
            for p in range(pfn, pfn + (1 << order)):
                del owner[p]
            assert kasan_check(m.mem.shadow, pfn * 4096, 8) == KASAN_FREE_PAGE
        for nid in range(3):
            used = sum(1 << o for (o, n) in live.values() if n == nid)
            assert zone_stats(m.mem, nid)["nr_free_pages"] + used == ranges[nid][1]
    assert check_buddy(m.mem) == []
    for pfn, (order, _) in list(live.items()):
        assert __free_pages(m.mem, pfn, order, 0) == FREE_OK
    assert check_buddy(m.mem) == []
    assert [zone_stats(m.mem, n)["free_per_order"] for n in range(3)] == initial


def test_fallback_follows_distance(machine):
    m = machine
    _boot(m)
    # Node 1 (1 MiB = 256 pages) fills up; then its nearest node (0, distance 12) serves,
    # never node 2 (distance 30) while node 0 has room.
    got = [int(alloc_pages_node(m.mem, 1, 0, 0, 0)) for _ in range(256 + 10)]
    nodes = [int(m.mem.page[p, PAGE_NODE]) for p in got]
    assert nodes[:256] == [1] * 256 and nodes[256:] == [0] * 10
    assert zone_stats(m.mem, 1)["fallbacks"] == 10
    assert int(alloc_pages_node(m.mem, 1, 0, __GFP_THISNODE, 0)) == -1
    assert zone_stats(m.mem, 1)["failures"] == 1
    for p in got:
        __free_pages(m.mem, p, 0, 0)
    assert check_buddy(m.mem) == []


def test_zonelist_order(machine):
    assert machine.mem.zonelist.tolist() == [[0, 1, 2], [1, 0, 2], [2, 0, 1]]


def test_injected_failures_surface(machine):
    m = machine
    _boot(m)
    set_fail_injection(m.mem, 0, nth=3)
    res = [int(alloc_pages_node(m.mem, 0, 0, 0, 0)) for _ in range(5)]
    assert res[2] == -1 and all(r > 0 for i, r in enumerate(res) if i != 2)
    st0 = zone_stats(m.mem, 0)
    assert st0["injected_failures"] == 1 and st0["failures"] == 1
    set_fail_injection(m.mem, 2, ppm=500_000, seed=7)
    res2 = [int(alloc_pages_node(m.mem, 2, 0, 0, 0)) for _ in range(400)]
    fails = res2.count(-1)
    assert 100 < fails < 300  # about half, from a seeded PRNG
    assert zone_stats(m.mem, 2)["injected_failures"] == fails
    # the same seed gives the same failures
    _boot(m)
    set_fail_injection(m.mem, 2, ppm=500_000, seed=7)
    again = [int(alloc_pages_node(m.mem, 2, 0, 0, 0)) < 0 for _ in range(400)]
    assert again == [r < 0 for r in res2]


def test_bad_frees_are_refused_without_corruption(machine):
    m = machine
    _boot(m)
    pfn = int(alloc_pages_node(m.mem, 0, 2, __GFP_COMP, 0))
    assert __free_pages(m.mem, pfn + 1, 0, 0) == FREE_BAD_PAGE  # a tail page
    assert __free_pages(m.mem, pfn, 1, 0) == FREE_BAD_PAGE  # wrong compound order
    assert __free_pages(m.mem, 0, 0, 0) == FREE_BAD_PAGE  # the guard frame
    assert __free_pages(m.mem, pfn, 2, 0) == FREE_OK
    assert __free_pages(m.mem, pfn, 2, 0) == FREE_BAD_PAGE  # double free
    assert check_buddy(m.mem) == []


def test_memoryless_node_allocates_from_neighbours():
    topo = small_topology(node_mib=(0, 4), distances=((10, 20), (20, 10)))
    with Machine(topo, MachineConfig(inbox_capacity=8)) as m:
        free_area_init(m.mem, topo, m.layout.meta["node_ranges"])
        p = int(alloc_pages_node(m.mem, 0, 0, 0, 0))
        assert p > 0 and m.mem.page[p, PAGE_NODE] == 1
        assert int(alloc_pages_node(m.mem, 0, 0, __GFP_THISNODE, 0)) == -1
        assert zone_stats(m.mem, 0)["fallbacks"] == 1


def test_max_order_block_and_exhaustion(machine):
    m = machine
    _boot(m)
    blocks = []
    while (p := int(alloc_pages_node(m.mem, 2, MAX_ORDER - 1, __GFP_THISNODE, 0))) > 0:
        blocks.append(p)
    assert len(blocks) == 1  # node 2 has 4 MiB = one order-10 block
    assert zone_stats(m.mem, 2)["nr_free_pages"] == 0
    __free_pages(m.mem, blocks[0], MAX_ORDER - 1, 0)
    assert check_buddy(m.mem) == []


# -- check_buddy can fail: each invariant broken once in a real state --------------------
@pytest.fixture
def fragmented(machine):
    """Node 0 after real allocations and frees: several orders listed, some with two
    or more blocks.  Returns the machine and node 0's free lists (order -> pfns)."""
    m = machine
    _boot(m)
    got = [(int(alloc_pages_node(m.mem, 0, o, 0, 0)), o) for o in (0, 0, 1, 3, 0, 2, 0, 1, 0)]
    for pfn, o in got[1::3]:  # free three of them: some merge, some cannot
        assert __free_pages(m.mem, pfn, o, 0) == FREE_OK
    assert check_buddy(m.mem) == []
    lists = {o: _free_list(m.mem, 0, o) for o in range(MAX_ORDER)}
    assert len(lists[0]) >= 2 and any(len(lists[o]) for o in range(1, MAX_ORDER))
    return m, lists


def _free_list(mem, nid, o):
    out, pfn = [], int(mem.zone[nid, ZONE_FREE_HEAD_0 + o])
    while pfn >= 0:
        out.append(pfn)
        pfn = int(mem.page[pfn, PAGE_LRU_NEXT])
    return out


def _reports(mem, pattern):
    bad = check_buddy(mem)
    assert any(re.search(pattern, b) for b in bad), f"no {pattern!r} in {bad[:6]}"
    return bad


def test_check_buddy_nr_free_of_an_order(fragmented):
    m, lists = fragmented
    m.mem.zone[0, ZONE_NR_FREE_0] += 1
    _reports(m.mem, rf"^node 0 order 0: nr_free {len(lists[0]) + 1} != {len(lists[0])} listed$")


def test_check_buddy_nr_free_pages(fragmented):
    m, _ = fragmented
    want = int(m.mem.zone[0, ZONE_NR_FREE_PAGES])
    m.mem.zone[0, ZONE_NR_FREE_PAGES] -= 1
    _reports(m.mem, rf"^node 0: nr_free_pages {want - 1} != {want} listed$")


@pytest.mark.parametrize("what", ["PG_buddy", "order"])
def test_check_buddy_listed_block_lacks_its_marks(fragmented, what):
    m, lists = fragmented
    pfn = lists[0][1]
    if what == "PG_buddy":
        m.mem.page[pfn, PAGE_FLAGS] &= ~PG_BUDDY
    else:
        m.mem.page[pfn, PAGE_PRIVATE] = 1  # a buddy order that is not its list's
    _reports(m.mem, rf"^node 0 order 0: pfn {pfn} lacks PG_buddy/order$")


def test_check_buddy_bad_prev_link(fragmented):
    m, lists = fragmented
    m.mem.page[lists[0][1], PAGE_LRU_PREV] = -1
    _reports(m.mem, rf"^node 0 order 0: pfn {lists[0][1]} bad prev link$")


def test_check_buddy_free_list_loops(fragmented):
    m, lists = fragmented
    m.mem.page[lists[0][-1], PAGE_LRU_NEXT] = lists[0][0]
    _reports(m.mem, r"^node 0 order 0: free list loops$")


def test_check_buddy_block_outside_its_node(fragmented):
    m, lists = fragmented
    other = int(m.mem.zone[2, ZONE_START_PFN])  # a frame of node 2 on node 0's list
    m.mem.page[lists[0][-1], PAGE_LRU_NEXT] = other
    _reports(m.mem, rf"^node 0 order 0: pfn {other} outside the node$")


def test_check_buddy_block_filed_under_a_larger_order(fragmented):
    # an order-0 block at an odd offset moved to the order-1 list, counters kept
    m, lists = fragmented
    start = int(m.mem.zone[0, ZONE_START_PFN])
    pfn = next(p for p in lists[0] if (p - start) % 2)
    _free_list_del(m.mem, 0, 0, pfn)
    _free_list_add(m.mem, 0, 1, pfn)
    m.mem.page[pfn, PAGE_PRIVATE] = 1
    m.mem.zone[0, ZONE_NR_FREE_PAGES] += 1
    _reports(m.mem, rf"^node 0 order 1: pfn {pfn} misaligned$")


def test_check_buddy_frame_in_two_free_blocks(fragmented):
    # the second frame of a free order >= 1 block listed again on its own
    m, lists = fragmented
    o = next(o for o in range(1, MAX_ORDER) if lists[o])
    pfn = lists[o][0] + 1
    m.mem.page[pfn, PAGE_FLAGS] |= PG_BUDDY
    m.mem.page[pfn, PAGE_PRIVATE] = 0
    _free_list_add(m.mem, 0, 0, pfn)
    m.mem.zone[0, ZONE_NR_FREE_PAGES] += 1
    # lower orders are walked first: the order-o block is the one found overlapping
    _reports(m.mem, rf"^node 0 order {o}: pfn {lists[o][0]} in two free blocks$")


def test_check_buddy_free_buddies_not_merged(fragmented):
    # an allocated order-0 block whose buddy is free, freed without __free_one_page's merge
    m, lists = fragmented
    start = int(m.mem.zone[0, ZONE_START_PFN])
    pfn = lists[0][0]
    buddy = start + ((pfn - start) ^ 1)
    assert not m.mem.page[buddy, PAGE_FLAGS] & PG_BUDDY  # allocated, on its own
    m.mem.page[buddy, PAGE_FLAGS] = PG_BUDDY
    m.mem.page[buddy, PAGE_PRIVATE] = 0
    _free_list_add(m.mem, 0, 0, buddy)
    m.mem.zone[0, ZONE_NR_FREE_PAGES] += 1
    lo, hi = min(pfn, buddy), max(pfn, buddy)
    assert check_buddy(m.mem) == [f"node 0 order 0: free buddies {lo} and {hi} not merged"]


@pytest.mark.parametrize("how", ["unlisted", "marked"])
def test_check_buddy_pg_buddy_off_the_lists(fragmented, how):
    m, lists = fragmented
    if how == "unlisted":  # a free block dropped from its list, counters kept: lost pages
        o = next(o for o in range(1, MAX_ORDER) if lists[o])
        pfn = lists[o][0]
        _free_list_del(m.mem, 0, o, pfn)
        m.mem.zone[0, ZONE_NR_FREE_PAGES] -= 1 << o
    else:  # an allocated frame marked free but never listed
        start = int(m.mem.zone[0, ZONE_START_PFN])
        pfn = start + ((lists[0][0] - start) ^ 1)
        m.mem.page[pfn, PAGE_FLAGS] |= PG_BUDDY
    assert check_buddy(m.mem) == [f"pfn {pfn} has PG_buddy but heads no listed block"]
