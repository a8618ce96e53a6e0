"""The emulated machine of one run: its topology laid out in an arena.

What it models: the hardware the kernel boots on — emulated RAM split into one physical
range per NUMA node (with struct page rows and KASAN shadow for every frame), the
lock table, the per-CPU inboxes and the machine-wide constants row.  The kernel layers
(emulator/kernel/) initialise what they own on top of it (the page allocator's zones).

Physical memory map (invariants):
  - page frame 0 is a guard frame, PG_reserved, on no node: physical address 0 is
    NULL and is never handed out;
  - node k's frames are [start_pfn_k, start_pfn_k + pages_k), consecutive in node-id
    order; a memoryless node has pages_k == 0;
  - address = pfn * page_size; ram[address] is the emulated byte; shadow[address >> 3]
    is its KASAN shadow byte.
Lock rows: rows 0..nr_nodes-1 are the zone locks; later layers reserve theirs after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arena import Arena, Layout, LayoutBuilder
from .inbox import init_inboxes
from .spinlock import init_lock
from .structs import (
    ARCH_ARM64,
    ARCH_X86_64,
    LOCK_CLASS_OTHER,
    LOCK_CLASS_ZONE,
    MACHINE_ARCH,
    MACHINE_CACHE_LINE,
    MACHINE_KASAN,
    MACHINE_NR_CPUS,
    MACHINE_NR_FIELDS,
    MACHINE_NR_NODES,
    MACHINE_NR_PFNS,
    MACHINE_PAGE_SHIFT,
    MACHINE_PAGE_SIZE,
    PAGE_NR_FIELDS,
    STRUCTS,
    Mem,
)

KASAN_SHADOW_SCALE_SHIFT = 3


@dataclass(frozen=True)
class MachineConfig:
    inbox_capacity: int = 1024  # messages per CPU inbox (a power of two)
    msg_words: int = 4  # payload words per message
    kasan: bool = True  # object-level shadow checks (descriptor checks are always on)
    lock_stats: bool = True
    extra_locks: int = 0  # lock rows reserved for later layers


def node_ranges(topology, page_size: int | None = None) -> list[tuple[int, int]]:
    """(start_pfn, pages) per node, in topology node order; frame 0 is the guard."""
    ps = page_size or topology.page_size
    out = []
    pfn = 1
    for node in topology.nodes:
        pages = node.memory // ps
        out.append((pfn, pages))
        pfn += pages
    return out


def build_layout(topology, cfg: MachineConfig = MachineConfig()) -> Layout:
    ranges = node_ranges(topology)
    nr_pfns = 1 + sum(p for _, p in ranges)
    ps = topology.page_size
    cl = topology.cache_line
    nr_nodes = len(topology.nodes)
    nr_cpus = topology.nr_cpus
    if cfg.inbox_capacity <= 0 or cfg.inbox_capacity & (cfg.inbox_capacity - 1):
        raise ValueError("inbox_capacity must be a power of two")
    nr_locks = nr_nodes + cfg.extra_locks
    b = LayoutBuilder()
    b.add("machine", np.int64, (1, MACHINE_NR_FIELDS))
    b.add("lock", np.int64, (nr_locks, STRUCTS["lock"].width(cl)))
    b.add("page", np.int64, (nr_pfns, PAGE_NR_FIELDS))
    b.add("zone", np.int64, (nr_nodes, STRUCTS["zone"].width(cl)))
    b.add("zonelist", np.int64, (nr_nodes, nr_nodes))
    b.add("inbox", np.int64, (nr_cpus, 2, STRUCTS["inbox"].width(cl)))
    b.add("slots", np.int64, (nr_cpus, cfg.inbox_capacity, 1 + cfg.msg_words))
    b.add("ram", np.uint8, nr_pfns * ps)
    b.add("shadow", np.uint8, (nr_pfns * ps) >> KASAN_SHADOW_SCALE_SHIFT)
    b.meta.update(node_ranges=ranges, nr_locks=nr_locks, first_free_lock=nr_nodes)
    return b.build()


def mem_of(arena: Arena) -> Mem:
    """The Mem tuple of an arena's tables, in the order jitted code expects."""
    return Mem(*(arena.t[name] for name in Mem._fields))


class Machine:
    """A topology laid out in a fresh arena.  Use as a context manager."""

    def __init__(self, topology, cfg: MachineConfig = MachineConfig()):
        self.topology = topology
        self.cfg = cfg
        self.layout = build_layout(topology, cfg)
        self.arena = Arena.create(self.layout)
        try:
            self.mem = mem_of(self.arena)
            self._init_hardware()
        except BaseException:
            self.arena.close()
            raise

    def _init_hardware(self) -> None:
        t = self.topology
        m = self.mem.machine
        m[0, MACHINE_PAGE_SIZE] = t.page_size
        m[0, MACHINE_PAGE_SHIFT] = t.page_size.bit_length() - 1
        m[0, MACHINE_CACHE_LINE] = t.cache_line
        m[0, MACHINE_NR_CPUS] = t.nr_cpus
        m[0, MACHINE_NR_NODES] = len(t.nodes)
        m[0, MACHINE_NR_PFNS] = self.mem.page.shape[0]
        m[0, MACHINE_KASAN] = 1 if self.cfg.kasan else 0
        m[0, MACHINE_ARCH] = ARCH_ARM64 if t.arch == "arm64" else ARCH_X86_64
        for row in range(self.mem.lock.shape[0]):
            init_lock(self.mem.lock, row, LOCK_CLASS_ZONE if row < len(t.nodes) else LOCK_CLASS_OTHER,
                      node=row if row < len(t.nodes) else -1, stats=self.cfg.lock_stats)
        init_inboxes(self.mem.inbox, self.mem.slots)

    @property
    def name(self) -> str:
        return self.arena.name

    def close(self) -> None:
        self.mem = None
        self.arena.close()

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
