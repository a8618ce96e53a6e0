"""The invariant checker: slow, obviously correct, runnable at any quiescent point.

For SLAB caches (check_slab_cache): every slab is on the node list its active count
says (slabs_full, slabs_partial, slabs_free), its freelist entries [active, num) are
distinct object indices, free_objects == sum of (num - active) over the node's slabs,
every array_cache (per-CPU, shared, alien) has 0 <= avail <= limit, its entries are
objects of the cache not free in their slab and in no other array, and the allocated
objects are the oracle's.

What it checks, from the tables alone (no jitted code), for every live SLUB cache:
  - every object of every slab is in exactly one place: on its page freelist, on the
    c->freelist of the CPU whose c->page the slab is, held by an op in flight (a free
    between its phases), or allocated;
  - per slab: inuse + length(page freelist) == objects (SLUB counts c->freelist objects
    as in use from the page's point of view);
  - every slab is in exactly one place: a CPU's c->page, a CPU partial list, the node
    partial list, the node full list (track_full_slabs), or no list when it is full and
    not frozen, or held by an op in flight (a freshly frozen slab on its way to
    put_cpu_partial); frozen slabs are exactly those owned by a CPU or in flight;
  - a slab on n->partial has free objects or is empty, is not frozen, lies on node n;
  - nr_partial (and nr_full) equal the list lengths; nr_slabs and total_objects per node
    equal what the slab pages say;
  - with KASAN on: every free object's first granule is KASAN_KMALLOC_FREE, every
    allocated object's first byte is accessible;
  - every lock is free and its lock_stat numbers are consistent; the buddy allocator's
    invariants hold (page_alloc.check_buddy).
A quiescent point is between two phases of every CPU: no phase is half done.  Ops in
flight are read from the task rows.  `live` (address -> cache), when given by an oracle,
must equal the set of allocated objects exactly.
"""

from __future__ import annotations

import numpy as np

from ..machine import structs as S
from ..machine.spinlock import check_lock_stats
from .kasan import KASAN_KMALLOC_FREE
from .ops import OP_CACHE_FREE, OP_FREE, OP_NONE, OP_SHRINK, PH_FREE
from .page_alloc import check_buddy


def _fc(w: int) -> tuple[int, int, int, bool]:
    w = int(w)
    return (w & S.SLUB_FC_FREELIST_MASK, (w >> S.SLUB_FC_INUSE_SHIFT) & 0xFFFF,
            (w >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE, bool(w & S.SLUB_FC_FROZEN))


def walk_node_list(mem, n: int, nid: int, head_f: int, cnt_f: int, label: str,
                   slabs: set[int], name: str, bad: list[str]) -> list[int]:
    """The slabs on one node list, head first, checking what every list must satisfy:
    each entry is a slab of the cache on node nid, prev links match, no loop, and the
    count field equals the length."""
    out: list[int] = []
    p = int(mem.kmem_cache_node[n, head_f])
    prev = 0
    while p:
        if p not in slabs:
            bad.append(f"{name}: node {nid} {label} list holds {p}, not a slab of the cache")
            break
        if int(mem.page[p, S.PAGE_LRU_PREV]) != prev:
            bad.append(f"{name}: node {nid} {label} list: bad prev link at {p}")
        if int(mem.page[p, S.PAGE_NODE]) != nid:
            bad.append(f"{name}: slab {p} of node {mem.page[p, S.PAGE_NODE]} on node {nid}'s {label} list")
        out.append(p)
        if len(out) > len(slabs):
            bad.append(f"{name}: node {nid} {label} list loops")
            break
        prev = p
        p = int(mem.page[p, S.PAGE_LRU_NEXT])
    if len(out) != int(mem.kmem_cache_node[n, cnt_f]):
        bad.append(f"{name}: node {nid} {label} count {mem.kmem_cache_node[n, cnt_f]} != {len(out)} listed")
    return out


def in_flight(mem) -> tuple[set[int], set[int]]:
    """(objects, slab pages) held by ops between two phases, and kernel-internal objects
    (SLUB shrink's array, SLAB's off-slab freelists) that no oracle knows of."""
    objs: set[int] = set()
    pages: set[int] = set()
    for t in range(mem.task.shape[0]):
        op = int(mem.task[t, S.TASK_OP])
        if op == OP_NONE:
            continue
        if op in (OP_FREE, OP_CACHE_FREE) and mem.task[t, S.TASK_PHASE] != PH_FREE:
            objs.add(int(mem.task[t, S.TASK_OBJ]))
            pages.add(int(mem.task[t, S.TASK_PAGE]))
        if op == OP_SHRINK and mem.task[t, S.TASK_AUX]:
            objs.add(int(mem.task[t, S.TASK_AUX]))  # SLUB's slabs_by_inuse array
    # SLAB's off-slab freelists are objects of their freelist cache, kernel-internal
    slab_pages = np.flatnonzero((mem.page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0)
    for p in slab_pages:
        c = int(mem.page[p, S.PAGE_SLAB_CACHE])
        if mem.kmem_cache[c, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB and \
                mem.kmem_cache[c, S.KMEM_CACHE_OFF_SLAB]:
            objs.add(int(mem.page[p, S.PAGE_FREELIST]))
    return objs, pages


def check_slub_cache(mem, s: int, nr_cpus: int, nr_nodes: int, transit_objs: set[int],
                     transit_pages: set[int], live: dict | None = None) -> list[str]:
    bad: list[str] = []
    shift = int(mem.machine[0, S.MACHINE_PAGE_SHIFT])
    size = int(mem.kmem_cache[s, S.KMEM_CACHE_SIZE])
    offset = int(mem.kmem_cache[s, S.KMEM_CACHE_OFFSET])
    kasan = bool(mem.machine[0, S.MACHINE_KASAN])
    # slub.track_full(): every cache (slub_debug, 1) or memcg caches (track_full_slabs, 2)
    tf = int(mem.config[S.CONFIG_TRACK_FULL_SLABS])
    track_full = tf == 1 or (tf == 2 and int(mem.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE]) >= 0)
    page = mem.page
    slabs = np.flatnonzero(((page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0) & (page[:, S.PAGE_SLAB_CACHE] == s))
    slabs = [int(p) for p in slabs]
    where: dict[int, list[str]] = {p: [] for p in slabs}
    state: dict[int, str] = {}  # object address -> where it is
    name = f"cache {s}"

    def objects_of(pfn):
        return _fc(page[pfn, S.PAGE_FREELIST])[2]

    def put(addr, what, pfn):
        base = pfn << shift
        if addr < base or (addr - base) % size or (addr - base) // size >= objects_of(pfn):
            bad.append(f"{name}: {what}: {addr:#x} is no object of slab {pfn}")
            return False
        if addr in state:
            bad.append(f"{name}: object {addr:#x} both {state[addr]} and {what}")
            return False
        state[addr] = what
        return True

    def chain(head, pfn, what):
        n = 0
        a = head
        while a:
            if not put(a, what, pfn):
                break
            n += 1
            if n > objects_of(pfn):
                bad.append(f"{name}: {what} of slab {pfn} loops")
                break
            a = int(mem.ram64[(a + offset) >> 3])
        return n

    # per-CPU slabs and partial lists
    for cpu in range(nr_cpus):
        c = s * nr_cpus + cpu
        cp = int(mem.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE])
        cfl = int(mem.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST])
        if cp:
            if cp not in where:
                bad.append(f"{name}: cpu {cpu} c->page {cp} is not a slab of the cache")
            else:
                where[cp].append(f"c->page of cpu {cpu}")
                chain(cfl, cp, f"c->freelist of cpu {cpu}")
        elif cfl:
            bad.append(f"{name}: cpu {cpu} has a c->freelist without c->page")
        p = int(mem.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL])
        hops = 0
        while p:
            if p not in where:
                bad.append(f"{name}: cpu {cpu} partial list holds {p}, not a slab of the cache")
                break
            where[p].append(f"partial list of cpu {cpu}")
            p = int(page[p, S.PAGE_NEXT])
            hops += 1
            if hops > len(slabs):
                bad.append(f"{name}: cpu {cpu} partial list loops")
                break
    # node lists
    for nid in range(nr_nodes):
        n = s * nr_nodes + nid
        for head_f, cnt_f, label in (
                (S.KMEM_CACHE_NODE_PARTIAL_HEAD, S.KMEM_CACHE_NODE_NR_PARTIAL, "partial"),
                (S.KMEM_CACHE_NODE_FULL_HEAD, S.KMEM_CACHE_NODE_NR_FULL, "full")):
            for p in walk_node_list(mem, n, nid, head_f, cnt_f, label, set(where), name, bad):
                where[p].append(f"node {nid} {label}")
        nr = sum(1 for p in slabs if int(page[p, S.PAGE_NODE]) == nid)
        tot = sum(objects_of(p) for p in slabs if int(page[p, S.PAGE_NODE]) == nid)
        if nr != int(mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_SLABS]):
            bad.append(f"{name}: node {nid} nr_slabs {mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_SLABS]} != {nr}")
        if tot != int(mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_TOTAL_OBJECTS]):
            bad.append(f"{name}: node {nid} total_objects {mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_TOTAL_OBJECTS]} != {tot}")
    # per slab
    for p in slabs:
        fl, inuse, objects, frozen = _fc(page[p, S.PAGE_FREELIST])
        nfree = chain(((p << shift) + (fl - 1) * size) if fl else 0, p, f"page freelist of {p}")
        if inuse + nfree != objects:
            bad.append(f"{name}: slab {p}: inuse {inuse} + free {nfree} != objects {objects}")
        w = where[p]
        owned = [x for x in w if x.startswith("c->page") or x.startswith("partial list of cpu")]
        if len(w) > 1:
            bad.append(f"{name}: slab {p} is on {len(w)} lists: {w}")
        if frozen and not owned and p not in transit_pages:
            bad.append(f"{name}: slab {p} is frozen but no CPU owns it")
        if not frozen and owned:
            bad.append(f"{name}: slab {p} is not frozen but is {owned[0]}")
        if not frozen and p not in transit_pages:
            on_partial = any(x.endswith("partial") and x.startswith("node") for x in w)
            on_full = any(x.endswith("full") for x in w)
            if nfree > 0 and not on_partial:
                bad.append(f"{name}: slab {p} has {nfree} free objects but is on no partial list")
            if nfree == 0 and on_partial:
                bad.append(f"{name}: full slab {p} on a partial list")
            if nfree == 0 and track_full and not on_full:
                bad.append(f"{name}: full slab {p} missing from the full list")
    # every object accounted for
    allocated = set()
    for p in slabs:
        base = p << shift
        for i in range(objects_of(p)):
            a = base + i * size
            if a in state:
                if kasan and mem.shadow[a >> 3] != KASAN_KMALLOC_FREE:
                    bad.append(f"{name}: free object {a:#x} has shadow {mem.shadow[a >> 3]:#x}")
                continue
            if a in transit_objs:
                continue
            allocated.add(a)
            if kasan and mem.shadow[a >> 3] >= 0x80:
                bad.append(f"{name}: allocated object {a:#x} has shadow {mem.shadow[a >> 3]:#x}")
    if live is not None:
        want = {a for a, cache in live.items() if cache == s} - transit_objs
        if want != allocated:
            lost = sorted(want - allocated)[:4]
            extra = sorted(allocated - want)[:4]
            bad.append(f"{name}: allocated objects differ from the oracle: missing {[hex(a) for a in lost]}, unexpected {[hex(a) for a in extra]}")
    return bad


def _slab_free_obj(mem, s: int, pfn: int, idx: int) -> int:
    a = int(mem.page[pfn, S.PAGE_FREELIST])
    if int(mem.kmem_cache[s, S.KMEM_CACHE_FREELIST_IDX_SIZE]) == 1:
        return int(mem.ram[a + idx])
    return int(mem.ram[a + 2 * idx]) | (int(mem.ram[a + 2 * idx + 1]) << 8)


def check_slab_cache(mem, s: int, nr_cpus: int, nr_nodes: int,
                     live: dict | None = None, internal: set[int] = frozenset()) -> list[str]:
    """SLAB's invariants (mm/slab.c): lists by active count, free_objects, arrays."""
    bad: list[str] = []
    name = f"cache {s}"
    shift = int(mem.machine[0, S.MACHINE_PAGE_SHIFT])
    size = int(mem.kmem_cache[s, S.KMEM_CACHE_SIZE])
    num = int(mem.kmem_cache[s, S.KMEM_CACHE_OBJECTS])
    kasan = bool(mem.machine[0, S.MACHINE_KASAN])
    page = mem.page
    slabs = [int(p) for p in np.flatnonzero(((page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0)
                                            & (page[:, S.PAGE_SLAB_CACHE] == s))]
    state: dict[int, str] = {}
    where: dict[int, list[str]] = {p: [] for p in slabs}
    objs_of: dict[int, int] = {}
    for p in slabs:
        base = (p << shift) + int(page[p, S.PAGE_S_MEM])
        active = int(page[p, S.PAGE_COUNTERS])
        if not 0 <= active <= num:
            bad.append(f"{name}: slab {p} active {active} outside 0..{num}")
            continue
        idxs = [_slab_free_obj(mem, s, p, i) for i in range(active, num)]
        if len(set(idxs)) != len(idxs) or any(not 0 <= i < num for i in idxs):
            bad.append(f"{name}: slab {p} freelist {idxs} is not a set of object indices")
        for i in idxs:
            state[base + i * size] = f"free in slab {p}"
        for i in range(num):
            objs_of[base + i * size] = p
    for nid in range(nr_nodes):
        n = s * nr_nodes + nid
        for head_f, cnt_f, label in ((S.KMEM_CACHE_NODE_PARTIAL_HEAD, S.KMEM_CACHE_NODE_NR_PARTIAL, "partial"),
                                     (S.KMEM_CACHE_NODE_FULL_HEAD, S.KMEM_CACHE_NODE_NR_FULL, "full"),
                                     (S.KMEM_CACHE_NODE_FREE_HEAD, S.KMEM_CACHE_NODE_NR_FREE, "free")):
            for p in walk_node_list(mem, n, nid, head_f, cnt_f, f"slabs_{label}", set(where), name, bad):
                where[p].append(label)
                active = int(page[p, S.PAGE_COUNTERS])
                want = "free" if active == 0 else "full" if active == num else "partial"
                if want != label:
                    bad.append(f"{name}: slab {p} with active {active} on slabs_{label}")
        on_node = [p for p in slabs if int(page[p, S.PAGE_NODE]) == nid]
        free = sum(num - int(page[p, S.PAGE_COUNTERS]) for p in on_node)
        if free != int(mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS]):
            bad.append(f"{name}: node {nid} free_objects {mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS]} != {free}")
        if len(on_node) != int(mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_SLABS]):
            bad.append(f"{name}: node {nid} nr_slabs {mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_SLABS]} != {len(on_node)}")
    for p, w in where.items():
        if len(w) != 1:
            bad.append(f"{name}: slab {p} is on {len(w)} lists")
    arrays = [(s * nr_cpus + c, f"array of cpu {c}") for c in range(nr_cpus)]
    for nid in range(nr_nodes):
        n = s * nr_nodes + nid
        sh = int(mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_SHARED])
        if sh >= 0:
            arrays.append((sh, f"shared array of node {nid}"))
        al = int(mem.kmem_cache_node[n, S.KMEM_CACHE_NODE_ALIEN])
        if al >= 0:
            arrays += [(al + r, f"alien array of node {nid} for node {r}") for r in range(nr_nodes) if r != nid]
    for row, label in arrays:
        avail = int(mem.array_cache[row, S.ARRAY_CACHE_AVAIL])
        limit = int(mem.array_cache[row, S.ARRAY_CACHE_LIMIT])
        if avail > limit:
            bad.append(f"{name}: {label} avail {avail} > limit {limit}")
        elif avail < 0:
            bad.append(f"{name}: {label} avail {avail} < 0")
        # entry[] has room for the largest limit only: walk no further than limit
        for i in range(max(0, min(avail, limit))):
            a = int(mem.ac_entry[row, i])
            if a not in objs_of:
                bad.append(f"{name}: {label} holds {a:#x}, no object of the cache")
            elif a in state:
                bad.append(f"{name}: object {a:#x} both {state[a]} and in the {label}")
            else:
                state[a] = label
    allocated = set(objs_of) - set(state)
    if kasan:
        for a in state:
            if a in objs_of and mem.shadow[a >> 3] != KASAN_KMALLOC_FREE:
                bad.append(f"{name}: free object {a:#x} has shadow {mem.shadow[a >> 3]:#x}")
        for a in allocated:
            if mem.shadow[a >> 3] >= 0x80:
                bad.append(f"{name}: allocated object {a:#x} has shadow {mem.shadow[a >> 3]:#x}")
    if live is not None:
        want = {a for a, cache in live.items() if cache == s}
        allocated -= internal
        if want != allocated:
            bad.append(f"{name}: allocated objects differ from the oracle: missing {[hex(a) for a in sorted(want - allocated)[:4]]}, unexpected {[hex(a) for a in sorted(allocated - want)[:4]]}")
    return bad


def check_kernel(mem, nr_cpus: int, nr_nodes: int, live: dict | None = None) -> list[str]:
    """Every invariant of the module docstring; returns the violated ones."""
    bad = list(check_buddy(mem))
    objs, pages = in_flight(mem)
    for s in range(mem.kmem_cache.shape[0]):
        if mem.kmem_cache[s, S.KMEM_CACHE_STATE] != S.CACHE_ACTIVE:
            continue
        if mem.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
            bad += check_slub_cache(mem, s, nr_cpus, nr_nodes, objs, pages, live)
        else:
            bad += check_slab_cache(mem, s, nr_cpus, nr_nodes, live, objs)
    for row in range(mem.lock.shape[0]):
        bad += [f"lock {row}: {b}" for b in check_lock_stats(mem.lock, row)]
    return bad
