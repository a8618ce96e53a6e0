"""The emulator's header file: every emulated kernel struct, declared once.

Each struct is a named list of int64 fields; one row of a 2-D int64 table is one
instance.  This module generates, for every field, a module constant
`<STRUCT>_<FIELD>` holding its column index (e.g. `LOCK_WORD`, `PAGE_FREELIST`), and
`<STRUCT>_NR_FIELDS`.  Jitted code indexes tables as `tab[row, PAGE_FREELIST]`; the
constants are frozen into machine code at compile time, so nothing else in the project
may hard-code an offset.  (The numba cache is keyed on the package sources, see
emulator/__init__.py, so editing a struct here recompiles every caller.)

Row width: `fields` words, rounded up to the topology's cache line (in words) for
structs whose rows are written by different CPUs (`padded=True`: locks, per-CPU and
per-node rows), so that two rows never share a line (no false sharing, as the kernel's
____cacheline_aligned_in_smp).  struct page is not padded, as in the kernel.

Structs declared by later layers (SLUB, SLAB, memcg) are added to STRUCTS here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

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


def _free_area_fields() -> tuple[str, ...]:
    heads = tuple(f"free_head_{o}" for o in range(NR_ORDERS))
    counts = tuple(f"nr_free_{o}" for o in range(NR_ORDERS))
    return heads + counts


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
            ),
            padded=True,
            doc="A spinlock with /proc/lock_stat's fields, one per cache line.",
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
                "freelist",  # SLUB: first free object address (0: none)
                "counters",  # SLUB: packed inuse/objects/frozen
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


def _generate_constants() -> dict[str, int]:
    out: dict[str, int] = {}
    for s in STRUCTS.values():
        prefix = s.name.upper()
        for i, f in enumerate(s.fields):
            out[f"{prefix}_{f.upper().rstrip('_')}"] = i
        out[f"{prefix}_NR_FIELDS"] = s.nr_fields
    return out


_CONSTANTS = _generate_constants()
globals().update(_CONSTANTS)
__all__ = ["Struct", "STRUCTS", "MAX_ORDER", "NR_ORDERS", *_CONSTANTS]

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


class Mem(NamedTuple):
    """Every table of the arena, as jitted code receives them (one argument).

    Declared here, beside the structs, so that the data layout lives in one place.
    A table a run does not use is present with zero rows.
    """

    machine: np.ndarray  # [1, MACHINE_NR_FIELDS] int64
    lock: np.ndarray  # [nr_locks, width] int64
    page: np.ndarray  # [nr_pfns, PAGE_NR_FIELDS] int64
    zone: np.ndarray  # [nr_nodes, width] int64
    zonelist: np.ndarray  # [nr_nodes, nr_nodes] int64: fallback order by SLIT distance
    inbox: np.ndarray  # [nr_cpus, 2, width] int64
    slots: np.ndarray  # [nr_cpus, capacity, 1 + msg_words] int64
    ram: np.ndarray  # [nr_pfns * page_size] uint8: emulated physical memory
    shadow: np.ndarray  # [nr_pfns * page_size / 8] uint8: KASAN shadow


MEM_TABLES = Mem._fields
__all__ += ["Mem", "MEM_TABLES"]
