"""The allocators' fast paths, flattened: kmalloc, kmem_cache_alloc, kfree and
kmem_cache_free when they complete without a slow path.

What it models, for one op that runs as a single phase (preemption and interrupts
disabled throughout, as in the kernel's fast paths):
  kmalloc_fastpath            kmalloc_slab(), then as kmem_cache_alloc_fastpath
  kmem_cache_alloc_fastpath   __memcg_kmem_get_cache()'s lookup of an existing child
                              cache, then slab_alloc_fastpath
  slab_alloc_fastpath         SLUB slab_alloc_node()'s lockless pop of c->freelist
                              (slub.slab_alloc_fast: this_cpu_cmpxchg_double of freelist
                              and tid, stat ALLOC_FASTPATH); SLAB ____cache_alloc()'s
                              array-cache hit (slab.cache_alloc_hit, stat ALLOCHIT);
                              then kasan_kmalloc()
  kfree_fastpath              virt_to_head_page() and PageSlab, cache_from_obj() for
                              kmem_cache_free, the invalid-free and double-free checks,
                              kasan_slab_free(), then SLUB slab_free()'s push onto
                              c->freelist when the object's slab is c->page
                              (slub.slab_free_fast, stat FREE_FASTPATH) or SLAB
                              __cache_free()'s hit (slab.cache_free_hit, stat FREEHIT)

Contract: each function either completes the op exactly as the general path would —
the same tables written, the same counters — or reports a miss having written nothing
at all.  On a miss the caller runs the general path (ops._op_step's phase machine),
which repeats the checks and takes the slow path, reports the bad pointer, or queues the
memcg cache creation.  A miss is: a request beyond the kmalloc caches, a memcg with no
child cache of the root yet, a cache freed under the task (the general path reports the
use-after-free), an empty c->freelist or array cache, a node that does not match, a
pointer that is not a live object of a slab (NULL, kmalloc_large, invalid, already
free), a SLUB object whose slab is not c->page, a SLAB object of another node (the alien
path), a full array cache, or a dead cache under patch 8 (SLAB frees straight to the
node lists).  The helpers named above are shared with the general paths, so each
fast-path rule is written once.

Why a module of its own: these functions are compiled with `_nrt=False`.  numba counts
references to every array a function holds; an out-of-line call taking `k` increfs and
decrefs it, and so does every table read into a local that lives across a branch —
each an out-of-line atomic (docs/design.md §10; measured by tools/bench/fastpath.py).
With `_nrt=False` none of that is emitted (`k`, held by the caller, keeps every table alive
for the call, and the fast paths allocate nothing), so a table can be read into a local
once and the pair runs at the speed of the hand-inlined loop.  `Mem`'s getattr is
registered to compile without NRT for this (machine/structs.py).  The slow-path
functions they call (node_match, kasan_*) are ordinary NRT functions: numba compiles
each callee with its own flags.

Locks: none taken.  Invariants: those of the general paths (kernel/check.py), checked
by tests/emulator/kernel/test_fastpath.py, which runs random op sequences through these
functions and through the general path on two identical machines and compares every
table after every op.
"""

from __future__ import annotations

from numba import njit

from ..machine import structs as S
from .kasan import KASAN_KMALLOC_FREE
from .memcontrol import memcg_cache_lookup
from .slab import cache_alloc_hit, cache_free_hit
from .slab_common import (
    NUMA_NO_NODE,
    PTR_SLAB,
    classify_free,
    kasan_kmalloc,
    kasan_slab_free,
    kmalloc_slab,
    object_index,
)
from .slub import slab_alloc_fast, slab_free_fast


@njit(cache=True, _nrt=False, inline="always")
def slab_alloc_fastpath(k, s, node, size, cpu):
    """The object, or 0 (a miss: nothing written)."""
    kasan = k.machine[0, S.MACHINE_KASAN] != 0
    if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
        obj = slab_alloc_fast(k, s, node, cpu)
    elif node == NUMA_NO_NODE or node == k.cpu[cpu, S.CPU_MEM_NODE]:
        obj = cache_alloc_hit(k, s, cpu)
    else:
        return 0  # SLAB: ____cache_alloc_node() on another node
    if obj != 0 and kasan:
        kasan_kmalloc(k, s, obj, size)
    return obj


@njit(cache=True, _nrt=False, inline="always")
def kmem_cache_alloc_fastpath(k, s, gen, node, size, cpu, t):
    """kmem_cache_alloc_node(s, node) by task t (t < 0: no task, no memcg), s taken at
    generation gen: the object, or 0 (a miss)."""
    if k.kmem_cache[s, S.KMEM_CACHE_GEN] != gen:
        return 0  # cache_touch() fails: the general path reports it
    if t >= 0:
        s = memcg_cache_lookup(k, s, t)
        if s < 0:
            return 0  # no child cache yet: memcg_kmem_get_cache() queues its creation
    return slab_alloc_fastpath(k, s, node, size, cpu)


@njit(cache=True, _nrt=False, inline="always")
def kmalloc_fastpath(k, size, node, cpu, t):
    """kmalloc_node(size, node) by task t: the object, or 0 (a miss)."""
    s = kmalloc_slab(k, size)
    if s < 0:
        return 0  # kmalloc_large_node()
    return kmem_cache_alloc_fastpath(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], node, size, cpu, t)


@njit(cache=True, _nrt=False, inline="always")
def kfree_fastpath(k, obj, want, want_gen, cpu):
    """kfree(obj) (want < 0) or kmem_cache_free(want, obj) with want taken at
    generation want_gen.  Returns the object's slab (its head pfn) when freed, 0 on a
    miss."""
    kind, pfn = classify_free(k, obj)  # virt_to_head_page(), PageSlab()
    if kind != PTR_SLAB:
        return 0
    s = k.page[pfn, S.PAGE_SLAB_CACHE]
    if want >= 0:  # kmem_cache_free: cache_touch(want), then cache_from_obj()
        if k.kmem_cache[want, S.KMEM_CACHE_GEN] != want_gen or \
                (s != want and k.kmem_cache[s, S.KMEM_CACHE_ROOT_CACHE] != want):
            return 0
    if object_index(k, s, pfn, obj) < 0:
        return 0  # an invalid free: reported by the general path
    kasan = k.machine[0, S.MACHINE_KASAN] != 0
    if kasan and k.shadow[obj >> 3] == KASAN_KMALLOC_FREE:
        return 0  # a double free: reported by the general path
    if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
        done = slab_free_fast(k, s, pfn, obj, cpu)  # the object's slab is c->page
    else:
        done = cache_free_hit(k, s, obj, pfn, cpu)
    if not done:
        return 0
    if kasan:  # slab_free_hook(): it writes the shadow only, so after the push is the same
        kasan_slab_free(k, s, obj)
    return pfn
