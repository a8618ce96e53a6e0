"""The emulator's header file: every emulated kernel struct, declared once.

Each struct is a named list of int64 fields; one row of a 2-D int64 table is one
instance.  Every field has a module constant `<STRUCT>_<FIELD>` holding its column
index (e.g. `LOCK_WORD`, `PAGE_FREELIST`), and every struct `<STRUCT>_NR_FIELDS`; the
stat items and config fields below have theirs (`ALLOC_FASTPATH`, `STAT_ALLOCHIT`,
`CONFIG_DEAD_CACHES`).  They are written out, one line each, in struct_fields.py,
generated from the declarations here by `python -m emulator.machine.structs --write`
and imported below (importing this module fails while that file is out of date).
Jitted code indexes tables as `tab[row, PAGE_FREELIST]`; the constants are frozen into
machine code at compile time, so nothing else in the project may hard-code an offset.
(The numba cache is keyed on the package sources, see emulator/__init__.py, so editing
a struct here recompiles every caller.)

Row width: `fields` words, rounded up to the topology's cache line (in words) for
structs whose rows are written by different CPUs (`padded=True`: locks, per-CPU and
per-node rows), so that two rows never share a line (no false sharing, as the kernel's
____cacheline_aligned_in_smp).  struct page is not padded, as in the kernel.

Every layer's structs (the machine's, the page allocator's, SLUB's and SLAB's, memcg's,
RCU's, the runner's and the workload's) are declared here, in STRUCTS; see
docs/design.md §5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from llvmlite import ir as llvm_ir
from numba import config as numba_config
from numba import njit, types
from numba.core import cgutils
from numba.core.datamodel import default_manager, models
from numba.core.imputils import impl_ret_borrowed, lower_getattr_generic, lower_setattr_generic
from numba.core.typing.templates import AttributeTemplate, infer_getattr
from numba.experimental import structref

from .struct_fields import *  # noqa: F403  (generated: see generated_constants below)

MAX_ORDER = 11  # free lists for orders 0..MAX_ORDER-1 (0..10), as Linux 3.x
NR_ORDERS = MAX_ORDER


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[str, ...]
    padded: bool = False
    doc: str = ""

    @property
    def nr_fields(self) -> int:
        return len(self.fields)

    def width(self, cache_line: int) -> int:
        """Words per row on a machine with this cache-line size (bytes)."""
        n = len(self.fields)
        if not self.padded:
            return n
        words = cache_line // 8
        return -(-n // words) * words


# The lock columns lock_stat, the reports and check_lock_stats read: a vclock row keeps
# them as an unused lock's (0, or class LOCK_CLASS_OTHER and node -1), so that reports
# and snapshots see an idle lock there.
_LOCK_REPORT_COLUMNS = ("word", "stats", "acquisitions", "contentions", "con_bounces",
                        "acq_bounces", "class_", "node")


def _vclock_fields() -> tuple[str, ...]:
    """struct vclock: its own fields in the lock row's other columns (rsv_ keeps a report
    column).  Virtual-time mode (emulator/run/virtual.py)."""
    own = [
        "now",  # virtual ns of the CPU being stepped, advanced by the lock functions
        "cpu",  # the CPU being stepped
        "pos",  # its place: vclock_pos(node, package, core)
        "x_cpu",  # ns: an atomic on a line this CPU wrote last
        "x_smt",  # ns: ... that its SMT sibling wrote last
        "x_package",  # ns: ... that another core of its package wrote last
        "x_node",  # ns: ... that a CPU of another package of its node wrote last
        "hold_zone",  # ns: the body of a critical section, by lock class (LOCK_CLASS_*)
        "hold_list_lock",
        "hold_alien",
        "hold_shared",
        "hold_other",
        "wait",  # ns the stepped CPU waited for locks in this step (contentions)
        "xfer",  # ns the stepped CPU spent moving lock lines in this step
    ]
    lock_cols = ("word", "last_cpu", "acquired_at", "stats", "acquisitions", "contentions",
                 "con_bounces", "acq_bounces", "wait_min", "wait_max", "wait_total", "hold_min",
                 "hold_max", "hold_total", "spins", "yields", "class_", "node", "owner_obj",
                 "free_at", "last_pos")
    out = []
    for name in lock_cols:
        if name in _LOCK_REPORT_COLUMNS:
            out.append("rsv_" + name)
        elif own:
            out.append(own.pop(0))
        else:
            out.append("spare_" + name)
    return tuple(out + own)


def _free_area_fields() -> tuple[str, ...]:
    heads = tuple(f"free_head_{o}" for o in range(NR_ORDERS))
    counts = tuple(f"nr_free_{o}" for o in range(NR_ORDERS))
    return heads + counts



# CONFIG_SLUB_STATS items, in the order of enum stat_item, with its comments
# (include/linux/slub_def.h, 3.16).
SLUB_STAT_ITEMS = (
    "ALLOC_FASTPATH",  # Allocation from cpu slab
    "ALLOC_SLOWPATH",  # Allocation by getting a new cpu slab
    "FREE_FASTPATH",  # Free to cpu slab
    "FREE_SLOWPATH",  # Freeing not to cpu slab
    "FREE_FROZEN",  # Freeing to frozen slab
    "FREE_ADD_PARTIAL",  # Freeing moves slab to partial list
    "FREE_REMOVE_PARTIAL",  # Freeing removes last object
    "ALLOC_FROM_PARTIAL",  # Cpu slab acquired from node partial list
    "ALLOC_SLAB",  # Cpu slab acquired from page allocator
    "ALLOC_REFILL",  # Refill cpu slab from slab freelist
    "ALLOC_NODE_MISMATCH",  # Switching cpu slab
    "FREE_SLAB",  # Slab freed to the page allocator
    "CPUSLAB_FLUSH",  # Abandoning of the cpu slab
    "DEACTIVATE_FULL",  # Cpu slab was full when deactivated
    "DEACTIVATE_EMPTY",  # Cpu slab was empty when deactivated
    "DEACTIVATE_TO_HEAD",  # Cpu slab was moved to the head of partials
    "DEACTIVATE_TO_TAIL",  # Cpu slab was moved to the tail of partials
    "DEACTIVATE_REMOTE_FREES",  # Slab contained remotely freed objects
    "DEACTIVATE_BYPASS",  # Implicit deactivation
    "ORDER_FALLBACK",  # Number of times fallback was necessary
    "CMPXCHG_DOUBLE_CPU_FAIL",  # Failure of this_cpu_cmpxchg_double
    "CMPXCHG_DOUBLE_FAIL",  # Number of times that cmpxchg double did not match
    "CPU_PARTIAL_ALLOC",  # Used cpu partial on alloc
    "CPU_PARTIAL_FREE",  # Refill cpu partial on free
    "CPU_PARTIAL_NODE",  # Refill cpu partial from node partial
    "CPU_PARTIAL_DRAIN",  # Drain cpu partial to node partial
)
NR_SLUB_STAT_ITEMS = len(SLUB_STAT_ITEMS)

# SLAB's counters: mm/slab.c's STATS_INC_* / STATS_ADD_* items (CONFIG_DEBUG_SLAB's
# statistics, per cache there; kept per CPU here to avoid sharing), plus two of this
# model's own.  Each comment names the macro.
SLAB_STAT_ITEMS = (
    "ALLOCHIT",  # allocation from the CPU's array_cache (STATS_INC_ALLOCHIT)
    "ALLOCMISS",  # allocation finding the CPU's array empty: a refill (STATS_INC_ALLOCMISS)
    "FREEHIT",  # free into the CPU's array_cache (STATS_INC_FREEHIT)
    "FREEMISS",  # free finding the CPU's array full: cache_flusharray (STATS_INC_FREEMISS)
    "NODEALLOCS",  # object taken from a node's slab lists by ____cache_alloc_node
    #                (STATS_INC_NODEALLOCS)
    "NODEFREES",  # free of another node's object, cache_free_alien (STATS_INC_NODEFREES)
    "NODE_OVERFLOW",  # alien array full, drained to its home node (STATS_INC_ACOVERFLOW)
    "ALIEN_FREE_HIT",  # this model's own: an alien free that found room in the array
    "ALIEN_FREE_MISS",  # this model's own: an alien free that drained the array first
    "REAPED",  # slabs freed by cache_reap's drain_freelist (STATS_ADD_REAPED)
    "GROWN",  # slabs added by cache_grow (STATS_INC_GROWN)
    "FREELIMIT",  # not counted by the model: always 0
)
NR_SLAB_STAT_ITEMS = len(SLAB_STAT_ITEMS)

STRUCTS: dict[str, Struct] = {
    s.name: s
    for s in (
        Struct(
            "machine",
            (
                "page_size",
                "page_shift",
                "cache_line",
                "nr_cpus",
                "nr_nodes",
                "nr_pfns",  # page frames in emulated RAM, the guard frame 0 included
                "kasan",  # 1: object-level shadow checks and poisoning on
                "arch",  # 0 x86_64, 1 arm64
                "tid_step",  # SLUB's TID_STEP: roundup_pow_of_two(nr_cpus)
            ),
            doc="Read-mostly machine-wide constants of one run (row 0 only).",
        ),
        Struct(
            "lock",
            (
                "word",  # 0 unlocked, else holder cpu + 1
                "last_cpu",  # cpu of the previous acquisition + 1 (lock_stat's lock->cpu)
                "acquired_at",  # monotonic ns of the current acquisition (hold time)
                "stats",  # 1: keep lock_stat fields, 0: raw lock (benchmarks)
                "acquisitions",
                "contentions",
                "con_bounces",
                "acq_bounces",
                "wait_min",  # ns; the minimum fields start at INT64_MAX
                "wait_max",
                "wait_total",
                "hold_min",
                "hold_max",
                "hold_total",
                "spins",  # spin iterations while contended: deterministic, unlike time
                "yields",  # sched_yield calls after a bounded spin
                "class_",  # what the lock protects (LOCK_CLASS_*), for reports
                "node",  # NUMA node the lock belongs to, or -1
                "owner_obj",  # the owning object's row (cache row, node...), or -1
                # virtual-time mode only (emulator/run/virtual.py; stats == LOCK_STATS_VIRTUAL):
                "free_at",  # virtual ns at which the lock is free again (its last release)
                "last_pos",  # the last holder's place (vclock_pos: node, package, core)
            ),
            padded=True,
            doc="A spinlock with /proc/lock_stat's fields, one per cache line.",
        ),
        Struct(
            "vclock",
            _vclock_fields(),
            doc="Virtual-time mode: the clock of the CPU being stepped and its costs, in a"
            " spare row of the lock table (the lock functions receive only that table)."
            "  The rsv_ columns are the lock columns reports read: they stay those of an"
            " unused lock.",
        ),
        Struct(
            "page",
            (
                "flags",  # PG_* bits
                "private",  # buddy order while PG_buddy (set_page_order)
                "lru_next",  # list links (buddy free list, slab lists): pfn or -1
                "lru_prev",
                "node",  # page_to_nid()
                "compound_head",  # head pfn for tail pages of a compound page, else -1
                "compound_order",  # order of a compound head page
                "slab_cache",  # kmem_cache row of a slab page, or -1
                "freelist",  # SLUB: the cmpxchg_double pair packed in one word, see
                #              SLUB_FC_* below; SLAB: address of the freelist index array
                "counters",  # SLAB: page->active (objects in use)
                "next",  # SLUB: next page on a CPU partial list (pfn, 0 = none)
                "pages",  # SLUB: pages on the CPU partial list from here (head only)
                "pobjects",  # SLUB: free objects on the CPU partial list (head only)
                "s_mem",  # offset of the first object from the page address (SLAB colour)
                "memcg",  # memcg row charged with this page, or -1
            ),
            doc="struct page: one row per page frame of emulated RAM.",
        ),
        Struct(
            "zone",
            _free_area_fields()
            + (
                "start_pfn",  # first pfn of the node (node_start_pfn)
                "spanned_pages",  # pages in the node; 0 for a memoryless node
                "nr_free_pages",
                "alloc_calls",  # __alloc_pages calls that preferred this node
                "allocs",  # successful allocations served from this node
                "fallbacks",  # allocations preferring this node served by another
                "failures",  # allocations preferring this node that failed
                "injected_failures",
                "frees",
                "fail_ppm",  # fault injection: probability in parts per million
                "fail_nth",  # fault injection: fail the Nth call (1-based), 0 = off
                "fail_rng",  # xorshift64 state for fail_ppm (under the zone lock)
                "lock",  # row of the zone lock in the lock table
            ),
            padded=True,
            doc="One NUMA node's zone: the buddy free_area and per-node counters.",
        ),
        Struct(
            "kmem_cache",
            (
                "gen",  # generation: bumped when the row is freed (use-after-free checks)
                "state",  # CACHE_FREE / CACHE_ACTIVE
                # allocator .. alien_limit: the geometry and tunables, one run of fields
                # that memcg_create_kmem_cache copies from the root cache
                "allocator",  # ALLOCATOR_SLUB / ALLOCATOR_SLAB
                "object_size",
                "size",  # object size plus metadata: the stride between objects
                "align",
                "offset",  # SLUB: free pointer offset inside a free object
                "inuse",  # SLUB: s->inuse (offset to metadata)
                "flags",  # SLAB_* creation flags
                "order",  # SLUB: oo_order(s->oo); SLAB: gfporder
                "objects",  # SLUB: oo_objects(s->oo); SLAB: num
                "min_order",  # SLUB: oo_order(s->min)
                "min_objects",  # SLUB: oo_objects(s->min)
                "min_partial",
                "cpu_partial_objects",  # SLUB: s->cpu_partial, the free objects a CPU
                #                         partial list may hold (KMEM_CACHE_CPU_PARTIAL
                #                         is kmem_cache_cpu's `partial`)
                "remote_node_defrag_ratio",
                "refcount",  # kmem_cache_create aliases
                "colour",  # SLAB
                "colour_off",  # SLAB
                "off_slab",  # SLAB: freelist index array kept off the slab page
                "freelist_size",  # SLAB
                "freelist_cache",  # SLAB: kmalloc cache of an off-slab freelist, or -1
                "freelist_idx_size",  # SLAB: bytes per freelist_idx_t (1 or 2)
                "limit",  # SLAB tunables
                "batchcount",
                "shared",
                "alien_limit",
                "memcg_params",  # memcg_cache_params row, or -1 (root caches)
                "root_cache",  # for a memcg child cache: its root cache row, else -1
                "freed_cpu",  # kmem_cache_destroy of the last generation: by which CPU,
                "freed_phase",  # in which phase of the destroy op,
                "freed_root",  # and what the cache was (root cache row, memcg row)
                "freed_memcg",
                "created_cpu",  # memcg child caches: the CPU whose kworker created it
            ),
            doc="struct kmem_cache: one row per cache (SLUB and SLAB fields side by side).",
        ),
        Struct(
            "kmem_cache_cpu",
            ("freelist", "page", "partial", "tid")
            + tuple(f"stat_{n.lower()}" for n in SLUB_STAT_ITEMS)
            + tuple(f"slab_{n.lower()}" for n in SLAB_STAT_ITEMS),
            padded=True,
            doc="struct kmem_cache_cpu, row cache * nr_cpus + cpu, with the stat counters"
            " (written by its own CPU only).  SLAB keeps its array_cache elsewhere.",
        ),
        Struct(
            "kmem_cache_node",
            (
                "list_lock",  # lock row
                "nr_partial",
                "partial_head",  # pfn, 0 = empty (frame 0 is never a slab)
                "partial_tail",
                "full_head",  # SLUB with track_full_slabs; SLAB: slabs_full
                "full_tail",
                "nr_full",
                "free_head",  # SLAB: slabs_free
                "free_tail",
                "nr_free",
                "nr_slabs",  # atomic_long_t nr_slabs
                "total_objects",  # atomic_long_t total_objects
                "free_objects",  # SLAB
                "free_limit",  # SLAB
                "colour_next",  # SLAB
                "shared",  # SLAB: array_cache row of the shared array, or -1
                "alien",  # SLAB: first array_cache row of the alien caches, or -1
                "next_reap",  # SLAB
                "free_touched",  # SLAB
            ),
            padded=True,
            doc="struct kmem_cache_node, row cache * nr_nodes + node.",
        ),
        Struct(
            "array_cache",
            ("avail", "limit", "batchcount", "touched", "lock", "entries"),
            padded=True,
            doc="SLAB's struct array_cache; `entries` is the row of its slot array in"
            " the ac_entry table; `lock` is the alien cache's lock row (or -1).",
        ),
        Struct(
            "task",
            (
                "cpu",
                "op",  # OP_*; OP_NONE when idle
                "phase",
                "cache",  # the cache the op works on (as kfree holds `s`) ...
                "cache_gen",  # ... and its generation when it was taken
                "node",
                "size",
                "obj",  # the object being allocated or freed
                "page",  # pfn the op works on
                "prior",  # SLUB __slab_free: the freelist|counters word read
                "new",  # SLUB __slab_free: the word to install
                "flags",  # op-private bits
                "iter",  # op-private loop counter (shrink: node)
                "aux",  # op-private (shrink: the temporary array)
                "result",
                "slot",  # the driver's object slot for the result
                "ops_done",
                "ops_started",
                "memcg",  # the memcg row the task belongs to, -1: the root memcg
                "sub_phase",  # op-private: the phase of a nested step (offline's shrink)
                "iter2",  # op-private: a second loop counter (offline: root cache)
                "preemptions",  # times this task was preempted at a preemption point
                "preempted_op",  # ops_started at its last preemption (== now: in this op)
                "prev_op",  # the op before the current one (the task's last event)
            ),
            padded=True,
            doc="An emulated task's in-flight operation (docs/design.md §7).",
        ),
        Struct(
            "cpu",
            (
                "node",
                "mem_node",  # numa_mem_id(): the nearest node with memory
                "preempt_count",
                "irqs_disabled",
                "ipi_acks",  # IPIs acknowledged to this CPU (its flush_all waits on it)
                "ipis_handled",
                "rng",  # the CPU's PRNG state
                "steps",
                "rcu_gp_seen",  # the last RCU-sched grace period this CPU reported a QS for
                "rcu_qs",  # quiescent states passed (op boundaries, task switches, idle)
                "rcu_cbs",  # call_rcu_sched callbacks queued and not yet run
                "current",  # the task running: 0 the workload task, 1 the kworker
                "works",  # work items run by the kworker
            ),
            padded=True,
            doc="Per emulated CPU state.",
        ),
        Struct(
            "kasan_report",
            (
                "bug",  # BUG_*
                "cpu",
                "task",
                "op",
                "phase",
                "addr",
                "size",  # bytes accessed (0: a free, or a touch of a freed descriptor)
                "cache",
                "shadow",  # the shadow byte hit
                "freed_cpu",
                "freed_op",
                "freed_phase",
                "preempted",  # 1: the reporting task was preempted inside this op
                "alloc_cpu",  # a freed cache: the CPU whose kworker created it
                "freed_cpu_op",  # the freeing CPU at report time: its workload task's op
                "freed_cpu_phase",  # ... and phase
                "cpu_prev_op",  # the reporting CPU's previous op (its last event before)
                "freed_root",  # a freed cache: what it was, its root cache row (-1: none)
                "freed_memcg",  # ... and its memcg row (kmem_cache.freed_root/freed_memcg)
            ),
            doc="One KASAN-style report.",
        ),
        Struct(
            "ctl",
            (
                "start",  # start barrier: workers arrive here (spin_barrier), row 0 only
                "stop",  # 1: stop issuing ops; each CPU frees what it holds and finishes
                "abort",  # 1: leave at the next phase boundary (failure, Ctrl-C)
                "pause",  # 1: finish the ops in flight and wait (a consistent snapshot)
                "paused",  # workers waiting in a pause
                "done",  # workers whose CPUs finished their workload
                "nr_workers",
                "stop_on_error",  # 1: a KASAN report aborts the run
                "error",  # 1: a worker saw a KASAN report with stop_on_error
                "finish",  # 1: every CPU is idle with nothing pending: workers return
                "memcgs",  # memcg rows handed out (memcg ids are never reused)
            ),
            padded=True,
            doc="The runner's control words (docs/design.md §8), one row, in shared memory.",
        ),
        Struct(
            "workload",
            (
                "state",  # WL_RUN, WL_FREEING, WL_DONE
                "issued",  # ops issued by this CPU's workload (the op budget counts these)
                "ops",  # kernel ops completed on this CPU (allocations and frees run here)
                "allocs",
                "alloc_failures",  # allocations that returned NULL
                "frees",  # frees of this CPU's own objects run here
                "remote_frees",  # frees of objects handed over by other CPUs, run here
                "sent_cpu",  # frees handed to another CPU of the same node
                "sent_node",  # frees handed to a CPU on another node
                "inbox_full",  # hand-overs that found the inbox full (freed locally)
                "shrinks",
                "reaps",
                "live",  # objects this CPU holds (wl_live[cpu, :live])
                "live_peak",
                "burst_left",  # decisions left in the current burst
                "burst_kind",  # 1 allocate, 0 free
                "rng",  # xorshift64 state of the generator
                "steps",  # phases run on this CPU
                "memcgs_created",
                "offlines",  # memcgs this CPU took offline
                "memcg_parent",  # the CPU's workload group: parent of its memcgs, or -1
            ),
            padded=True,
            doc="The workload generator's per-CPU state and counters (written by its CPU only).",
        ),
        Struct(
            "memcg",
            (
                "state",  # MEMCG_FREE, MEMCG_ONLINE, MEMCG_OFFLINE, MEMCG_RELEASED
                "parent",  # parent memcg row, -1: a child of the root memcg
                "nr_children",  # child memcgs not yet released (each pins its parent)
                "nr_caches",  # child caches alive (each pins the memcg, as css_get)
                "kmem_pages",  # pages charged here and below (the kmem res_counter,
                #                hierarchical: a charge goes up to every ancestor)
                "created_by",  # cpu
                "offlined_by",  # cpu, or -1
            ),
            padded=True,
            doc="struct mem_cgroup, the kmem part: one row per memcg (ids are not reused),"
            " in a hierarchy under the root memcg.",
        ),
        Struct(
            "memcg_cache_params",
            (
                "root_cache",  # root cache row, or -1 for a root cache
                "memcg",  # memcg row
                "refcnt",  # atomic: slabs + the initial reference of the live memcg
                "dead",  # set at offline (dead = true; smp_wmb())
                "destroying",  # 1 once a destroy is queued (work or RCU callback)
                "leaked",  # pre-series: offline found it non-empty and left it
            ),
            padded=True,
            doc="struct memcg_cache_params, row = the child cache's kmem_cache row.",
        ),
        Struct(
            "rcu",
            (
                "gp_started",  # grace periods started (the current one when > completed)
                "gp_completed",
                "gp_requested",  # the highest grace period a caller waits for
                "lock",  # lock row serialising grace-period start and completion
                "slab_mutex",  # lock row: memcg_slab_mutex / slab_mutex (cache rows)
            ),
            padded=True,
            doc="RCU-sched's global state, row 0 (the rcu_state of one flavour).",
        ),
        Struct(
            "inbox",
            (
                "pos",  # producer side: enqueue position (CAS); consumer side: dequeue
                "count",  # producer side: enqueues that found the ring full; consumer: received
            ),
            padded=True,
            doc="One side of a CPU's MPSC inbox; the table is [cpu, side] so producers' and"
            " the consumer's words sit on different cache lines.  Slots are a separate table.",
        ),
    )
}


__all__ = ["Struct", "STRUCTS", "MAX_ORDER", "NR_ORDERS"]

# Virtual-time mode (emulator/run/virtual.py).  lock.stats of every lock is
# LOCK_STATS_VIRTUAL; the run's vclock row is the spare lock row VCLOCK_ROW_FROM_END rows
# before the misc locks' (machine.py), the row after it holds the stepped CPU's line
# transfer cost from each node (ns; node j in column VCLOCK_NODE_COLUMNS[j]).
LOCK_STATS_VIRTUAL = 2
assert tuple(f.removeprefix("rsv_") for f in STRUCTS["vclock"].fields[:len(STRUCTS["lock"].fields)]
             if f.startswith("rsv_")) == tuple(f for f in STRUCTS["lock"].fields
                                               if f in _LOCK_REPORT_COLUMNS), \
    "vclock's rsv_ columns must be the lock's report columns"
assert all(not f.startswith("rsv_") or f[4:] == STRUCTS["lock"].fields[i]
           for i, f in enumerate(STRUCTS["vclock"].fields[:len(STRUCTS["lock"].fields)]))
VCLOCK_NODE_COLUMNS = tuple(i for i, f in enumerate(STRUCTS["lock"].fields)
                            if f not in _LOCK_REPORT_COLUMNS)
MAX_VIRTUAL_NODES = len(VCLOCK_NODE_COLUMNS)
__all__ += ["LOCK_STATS_VIRTUAL", "VCLOCK_NODE_COLUMNS", "MAX_VIRTUAL_NODES"]

ARCH_X86_64 = 0
ARCH_ARM64 = 1

# Page flags (include/linux/page-flags.h names).
PG_BUDDY = 1 << 0
PG_SLAB = 1 << 1
PG_HEAD = 1 << 2
PG_TAIL = 1 << 3
PG_RESERVED = 1 << 4

# Lock classes, for lock_stat's class names.
LOCK_CLASS_ZONE = 0
LOCK_CLASS_LIST_LOCK = 1
LOCK_CLASS_ALIEN = 2
LOCK_CLASS_SHARED = 3
LOCK_CLASS_OTHER = 4
LOCK_CLASS_NAMES = ("&zone->lock", "&n->list_lock", "&alc->lock", "&ac->lock", "lock")

INT64_MAX = (1 << 63) - 1

# Sides of an inbox header row.
INBOX_PRODUCER = 0
INBOX_CONSUMER = 1
# Inbox slot layout: word 0 is the sequence number, the payload follows.
SLOT_SEQ = 0

__all__ += [
    "ARCH_X86_64", "ARCH_ARM64",
    "PG_BUDDY", "PG_SLAB", "PG_HEAD", "PG_TAIL", "PG_RESERVED",
    "LOCK_CLASS_ZONE", "LOCK_CLASS_LIST_LOCK", "LOCK_CLASS_ALIEN", "LOCK_CLASS_SHARED",
    "LOCK_CLASS_OTHER", "LOCK_CLASS_NAMES", "INT64_MAX", "INBOX_PRODUCER", "INBOX_CONSUMER",
    "SLOT_SEQ",
]


# The tables jitted code receives, as one argument `k` (docs/design.md §5).  Each line:
# name, then what the table is.  A table a run does not use is present with zero rows.
MEM_TABLES = (
    "machine",  # [1, MACHINE_NR_FIELDS] int64
    "lock",  # [nr_locks, width] int64
    "page",  # [nr_pfns, PAGE_NR_FIELDS] int64
    "zone",  # [nr_nodes, width] int64
    "zonelist",  # [nr_nodes, nr_nodes] int64: fallback order by SLIT distance
    "inbox",  # [nr_cpus * NR_RINGS, 2 sides, width] int64
    "slots",  # [nr_cpus * NR_RINGS, capacity, 1 + msg_words] int64
    "ram",  # [nr_pfns * page_size] uint8: emulated physical memory
    "ram64",  # the same memory as int64 words (free pointers)
    "shadow",  # [nr_pfns * page_size / 8] uint8: KASAN shadow
    "kmem_cache",  # [max_caches, width]
    "kmem_cache_cpu",  # [max_caches * nr_cpus, width]
    "kmem_cache_node",  # [max_caches * nr_nodes, width]
    "array_cache",  # [rows, width] (SLAB)
    "ac_entry",  # [rows, max_limit] (SLAB): object addresses
    "task",  # [nr_cpus * tasks_per_cpu, width]
    "cpu",  # [nr_cpus, width]
    "kasan_report",  # [1 + max_reports, width]; row 0 word 0 counts reports
    "config",  # [CONFIG_NR] int64: run-time switches (policy, fault injection)
    "kmalloc_map",  # [KMALLOC_MAP_LEN]: size_index[24], then kmalloc_caches[32]
    "ctl",  # [1, width]: the runner's control words
    "wl",  # [nr_cpus, width]: the workload generator's per-CPU state
    "wl_live",  # [nr_cpus, live_cap]: objects each CPU holds, (address << 8) | cache spec
    "memcg",  # [max_memcgs, width]
    "memcg_cache_params",  # [max_caches, width]: row = cache row
    "memcg_caches",  # [max_memcgs, max_caches]: child cache row per (memcg, root), -1 none,
    #                  -2 creation queued
    "rcu",  # [1, width]
    "rcu_cb",  # [nr_cpus, cap, 4]: call_rcu_sched callbacks: gp, kind, arg, gen
)


class MemType(types.StructRef):
    """numba's type of `Mem`: a reference to a struct of array fields.

    A StructRef is passed to jitted functions as one pointer; a NamedTuple of ~20
    arrays would be flattened into ~180 scalar arguments per call, tripling compile
    time."""

    def preprocess_fields(self, fields):
        return tuple((n, types.unliteral(t)) for n, t in fields)


# NRT's struct MemInfo (numba/core/runtime/nrt.cpp): refct, dtor, dtor_info, data, size
_MEMINFO = llvm_ir.LiteralStructType([llvm_ir.IntType(64)] + [llvm_ir.IntType(8).as_pointer()] * 3 +
                                     [llvm_ir.IntType(64)])


def _register_mem_type(struct_type):
    """structref.register(), with a table read that also compiles in functions built
    with `_nrt=False` (the fast paths, see emulator/kernel/fastpath.py).

    numba's own StructRef getattr finds the payload through NRT's
    `NRT_MemInfo_data_fast` and refuses to compile without NRT.  Here the payload
    pointer is read straight from the MemInfo (its `data` word, as that function
    does), and the table is returned borrowed: with NRT on it is incref'd as numba's
    own getattr does; with NRT off nothing is counted, which is sound because the
    caller's `k` keeps every table alive for the whole call."""
    default_manager.register(struct_type, models.StructRefModel)

    @infer_getattr
    class _MemAttribute(AttributeTemplate):
        key = struct_type

        def generic_resolve(self, typ, attr):
            return typ.field_dict.get(attr)

    def payload(context, builder, typ, val):
        ref = cgutils.create_struct_proxy(typ)(context, builder, value=val)
        meminfo = builder.bitcast(ref.meminfo, _MEMINFO.as_pointer())
        data_ptr = builder.load(cgutils.gep(builder, meminfo, 0, 3))  # MemInfo.data
        payload_type = typ.get_data_type()
        alloc_type = context.data_model_manager[payload_type].get_value_type()
        data_ptr = builder.bitcast(data_ptr, alloc_type.as_pointer())
        return cgutils.create_struct_proxy(payload_type)(context, builder, ref=data_ptr)

    @lower_getattr_generic(struct_type)
    def _mem_getattr(context, builder, typ, val, attr):
        value = getattr(payload(context, builder, typ, val), attr)
        return impl_ret_borrowed(context, builder, typ.field_dict[attr], value)

    @lower_setattr_generic(struct_type)
    def _mem_setattr(context, builder, sig, args, attr):
        """Only Mem's constructor (`_new_mem`) sets fields, as numba's own setattr."""
        typ, val_type = sig.args
        data = payload(context, builder, typ, args[0])
        value = context.cast(builder, args[1], val_type, typ.field_dict[attr])
        old = getattr(data, attr)
        context.nrt.incref(builder, val_type, value)
        context.nrt.decref(builder, val_type, old)
        setattr(data, attr, value)

    return struct_type


_register_mem_type(MemType)


class Mem(structref.StructRefProxy):
    """Every table of the arena, for jitted code (`k.page[pfn, PAGE_FREELIST]`).

    Python reads the same numpy views through plain attributes (`mem.page`), without
    entering numba; `Mem.of(views)` builds one from a dict of arrays."""

    @classmethod
    def of(cls, views: dict) -> "Mem":
        if numba_config.DISABLE_JIT:  # the pure-Python baseline: a plain namespace
            return SimpleNamespace(**{name: views[name] for name in MEM_TABLES})
        mem = _new_mem(*(views[name] for name in MEM_TABLES))
        mem._views = {name: views[name] for name in MEM_TABLES}
        return mem

    def __getattr__(self, name):
        views = self.__dict__.get("_views")
        if views is not None and name in views:
            return views[name]
        raise AttributeError(name)


structref.define_constructor(Mem, MemType, MEM_TABLES)
structref.define_boxing(MemType, Mem)


@njit(cache=True)
def _new_mem(*arrays):
    return Mem(*arrays)


# kmalloc_map layout: size_index[(size - 1) / 8] for size <= 192 gives a kmalloc index,
# kmalloc_caches[index] (at KMALLOC_CACHES_AT) gives the cache row, -1 where none exists.
KMALLOC_SIZE_INDEX_LEN = 24
KMALLOC_CACHES_AT = 24
KMALLOC_MAP_LEN = 24 + 32
__all__ += ["Mem", "MEM_TABLES", "KMALLOC_SIZE_INDEX_LEN", "KMALLOC_CACHES_AT", "KMALLOC_MAP_LEN"]

__all__ += ["SLUB_STAT_ITEMS", "NR_SLUB_STAT_ITEMS", "SLAB_STAT_ITEMS", "NR_SLAB_STAT_ITEMS"]

# Stat indices (struct_fields.py: ALLOC_FASTPATH, ..., STAT_ALLOCHIT, ...): stat(s,
# ALLOC_FASTPATH) is kmem_cache_cpu[row, CPU_STAT + ALLOC_FASTPATH], SLAB's
# kmem_cache_cpu[row, CPU_SLAB_STAT + STAT_ALLOCHIT].
CPU_STAT = STRUCTS["kmem_cache_cpu"].fields.index("stat_alloc_fastpath")
CPU_SLAB_STAT = STRUCTS["kmem_cache_cpu"].fields.index("slab_allochit")
__all__ += ["CPU_STAT", "CPU_SLAB_STAT"]

# SLUB's packed freelist|counters word (struct page's cmpxchg_double pair in one CAS):
#   bits  0..15  freelist: index of the first free object + 1 (0 = NULL)
#   bits 16..31  inuse
#   bits 32..46  objects
#   bit  47      frozen
SLUB_FC_FREELIST_MASK = 0xFFFF
SLUB_FC_INUSE_SHIFT = 16
SLUB_FC_OBJECTS_SHIFT = 32
SLUB_FC_FROZEN = 1 << 47
MAX_OBJS_PER_PAGE = 32767
__all__ += ["SLUB_FC_FREELIST_MASK", "SLUB_FC_INUSE_SHIFT", "SLUB_FC_OBJECTS_SHIFT",
            "SLUB_FC_FROZEN", "MAX_OBJS_PER_PAGE"]

# kmem_cache states and allocators
CACHE_FREE = 0
CACHE_ACTIVE = 1
ALLOCATOR_SLUB = 0
ALLOCATOR_SLAB = 1
__all__ += ["CACHE_FREE", "CACHE_ACTIVE", "ALLOCATOR_SLUB", "ALLOCATOR_SLAB"]

# memcg states
MEMCG_FREE = 0
MEMCG_ONLINE = 1
MEMCG_OFFLINE = 2  # offline, still pinned by a child cache (a zombie) or being released
MEMCG_RELEASED = 3  # css_free(): no cache pins it any more
MEMCG_STATE_NAMES = ("free", "online", "offline", "released")
__all__ += ["MEMCG_FREE", "MEMCG_ONLINE", "MEMCG_OFFLINE", "MEMCG_RELEASED", "MEMCG_STATE_NAMES"]

# KASAN report kinds (summary.json "bug")
BUG_SLAB_USE_AFTER_FREE = 1
BUG_DOUBLE_FREE = 2
BUG_INVALID_FREE = 3
BUG_CACHE_USE_AFTER_FREE = 4  # a freed kmem_cache descriptor touched (generation moved on)
BUG_OUT_OF_BOUNDS = 5
BUG_NAMES = {
    BUG_SLAB_USE_AFTER_FREE: "slab-use-after-free",
    BUG_DOUBLE_FREE: "double-free",
    BUG_INVALID_FREE: "invalid-free",
    BUG_CACHE_USE_AFTER_FREE: "kmem_cache-use-after-free",
    BUG_OUT_OF_BOUNDS: "slab-out-of-bounds",
}
__all__ += ["BUG_SLAB_USE_AFTER_FREE", "BUG_DOUBLE_FREE", "BUG_INVALID_FREE",
            "BUG_CACHE_USE_AFTER_FREE", "BUG_OUT_OF_BOUNDS", "BUG_NAMES"]

# The config vector (Mem.config): run-time switches read by jitted code.
CONFIG_FIELDS = (
    "track_full_slabs",  # policy: SLUB keeps full slabs on a list (the re-parenting RFC)
    "shrink_tolerates_enomem",  # policy, patch 4: shrink drops empty slabs without its array
    "nr_tasks_per_cpu",
    "max_reports",
    "dead_caches",  # policy, patches 1-3: 0 leak (pre-series), 1 self-destruct
    "nonpreemptible_free",  # policy, patch 5: no preemption point inside slab_free
    "sync_before_destroy",  # policy, patch 6: an RCU-sched grace period before destroy
    "dead_discard_empty",  # policy, patches 7-8: dead caches drop empty slabs at once
    "preempt_ppm",  # fault injection: preemption probability at a preemption point
    "race_delay_spins",  # fault injection: the named race windows last this long (spins
    #                     inside a phase, steps stalled between slab_free phases)
    "fail_shrink_alloc",  # fault injection: __kmem_cache_shrink's kmalloc fails
    "preempt_model",  # kernel build: 0 PREEMPT_NONE, 1 PREEMPT_VOLUNTARY, 2 PREEMPT (kconfig.py)
    "slub_stats",  # kernel build: CONFIG_SLUB_STATS, stat() touches the cache
    "discard_rule",  # policy: SLUB keeps an empty slab unless nr_partial > min_partial
    #                  (0, Linux 3.16 and the v2 series) or >= min_partial (1, Linux 4.0:
    #                  "slub: fix off by one in number of slab tests", June 2014)
    "dead_cpu_partial",  # policy: how a dead SLUB cache stops caching slabs on cpu
    #                      partial lists: 0 it does not, 1 v2 patch 7's check in
    #                      put_cpu_partial, 2 the RFC's kmem_cache_has_cpu_partial(),
    #                      3 Linux 4.0's s->cpu_partial = 0 (policy.DEAD_CPU_PARTIAL)
)
# config[CONFIG_TRACK_FULL_SLABS] ... (struct_fields.py)
CONFIG_NR = len(CONFIG_FIELDS)
__all__ += ["CONFIG_FIELDS", "CONFIG_NR"]


# -- struct_fields.py ---------------------------------------------------------------------
STRUCT_FIELDS_PATH = Path(__file__).with_name("struct_fields.py")


def generated_constants() -> list[tuple[str, list[tuple[str, int, str]]]]:
    """What struct_fields.py holds: (section comment, [(name, value, comment)]) in order."""
    sections = []
    for s in STRUCTS.values():
        prefix = s.name.upper()
        rows = [(f"{prefix}_{f.upper().rstrip('_')}", i, f"{s.name}.{f}")
                for i, f in enumerate(s.fields)]
        rows.append((f"{prefix}_NR_FIELDS", s.nr_fields, f"fields of {s.name}"))
        sections.append((f"struct {s.name}: column indices", rows))
    sections.append(("SLUB_STAT_ITEMS: stat(s, ITEM) counts kmem_cache_cpu[row, CPU_STAT + ITEM]",
                     [(n, i, f"kmem_cache_cpu.stat_{n.lower()}")
                      for i, n in enumerate(SLUB_STAT_ITEMS)]))
    sections.append(("SLAB_STAT_ITEMS: counted in kmem_cache_cpu[row, CPU_SLAB_STAT + STAT_ITEM]",
                     [("STAT_" + n, i, f"kmem_cache_cpu.slab_{n.lower()}")
                      for i, n in enumerate(SLAB_STAT_ITEMS)]))
    sections.append(("CONFIG_FIELDS: indices of the config vector (Mem.config)",
                     [("CONFIG_" + n.upper(), i, f"config.{n}") for i, n in enumerate(CONFIG_FIELDS)]))
    seen: set[str] = set()
    for _, rows in sections:
        for name, _, _ in rows:
            # One struct's name can prefix another's (kmem_cache, kmem_cache_cpu): two
            # fields must never generate the same constant.
            if name in seen:
                raise ValueError(f"struct field constant {name} is generated twice")
            seen.add(name)
    return sections


def render_struct_fields() -> str:
    """The text of struct_fields.py."""
    out = ['"""Column indices of every emulated struct, and the stat and config indices.',
           "",
           "GENERATED by `python -m emulator.machine.structs --write` from the declarations in",
           "emulator/machine/structs.py (STRUCTS, SLUB_STAT_ITEMS, SLAB_STAT_ITEMS,",
           "CONFIG_FIELDS), where each field is documented: do not edit by hand.  Import the",
           "names from structs.py (`S.PAGE_FREELIST`), which re-exports them.",
           '"""']
    for title, rows in generated_constants():
        out += ["", f"# {title}"]
        out += [f"{name} = {value}  # {what}" for name, value, what in rows]
    return "\n".join(out) + "\n"


def _check_struct_fields() -> None:
    from . import struct_fields

    want = {name: value for _, rows in generated_constants() for name, value, _ in rows}
    have = {name: value for name, value in vars(struct_fields).items() if name.isupper()}
    if want != have:
        wrong = sorted(set(want.items()) ^ set(have.items()))
        raise ImportError(f"{STRUCT_FIELDS_PATH} is out of date ({wrong[0][0]}, ...): run "
                          "python -m emulator.machine.structs --write")


__all__ += [name for _, rows in generated_constants() for name, _, _ in rows]

if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m emulator.machine.structs",
                                 description="Write or check the generated struct_fields.py.")
    ap.add_argument("--write", action="store_true", help="(re)write struct_fields.py")
    ap.add_argument("--check", action="store_true", help="exit 1 if it is out of date")
    args = ap.parse_args()
    if args.write:
        STRUCT_FIELDS_PATH.write_text(render_struct_fields())
    elif args.check and STRUCT_FIELDS_PATH.read_text() != render_struct_fields():
        sys.exit(f"{STRUCT_FIELDS_PATH} is out of date: run python -m emulator.machine.structs --write")
else:
    _check_struct_fields()
