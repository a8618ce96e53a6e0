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
Lock rows: rows 0..nr_nodes-1 are the zone locks, then one list_lock per
(cache, node) (`list_lock_row`), then SLAB's alien locks (`alien_lock_row`), then
`MachineConfig.extra_locks` spare rows (none by default: no layer uses them), and last the
NR_MISC_LOCKS rows (rcu_state's lock, slab_mutex).
SLAB's array_cache rows: every cache's per-CPU arrays (`ac_cpu_row`), then the shared
array of every (cache, node) (`ac_shared_row`), then the alien arrays of every
(cache, node, remote node) (`ac_alien_row`).  These functions are the only place the
row formulas are written; they are jitted so that Python and jitted code share them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .arena import Arena, Layout, LayoutBuilder
from .inbox import init_inboxes
from .spinlock import VCLOCK_ROW_FROM_END, init_lock
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
    CONFIG_MAX_REPORTS,
    CONFIG_PREEMPT_MODEL,
    CONFIG_SLUB_STATS,
    CONFIG_NR,
    CONFIG_NR_TASKS_PER_CPU,
    KMALLOC_MAP_LEN,
    MACHINE_TID_STEP,
    STRUCTS,
    MEMCG_CACHE_PARAMS_MEMCG,
    MEMCG_CACHE_PARAMS_ROOT_CACHE,
    RCU_LOCK,
    RCU_SLAB_MUTEX,
    Mem,
)

KASAN_SHADOW_SCALE_SHIFT = 3


@dataclass(frozen=True)
class MachineConfig:
    inbox_capacity: int = 1024  # messages per inbox ring (a power of two)
    msg_words: int = 4  # payload words per message
    kasan: bool = True  # object-level shadow checks (descriptor checks are always on)
    lock_stats: bool = True
    extra_locks: int = 0  # spare lock rows before the misc locks; nothing uses them
    allocator: str = "slub"  # "slub" | "slab": sizes SLAB's array_cache tables
    max_caches: int = 64  # kmem_cache rows (boot caches, named caches, memcg children)
    tasks_per_cpu: int = 2  # the workload task and the kworker
    max_reports: int = 256  # KASAN reports kept (more are counted, not stored)
    ac_max_limit: int = 120  # SLAB: the largest array_cache limit (enable_cpucache)
    live_cap: int = 0  # workload: objects one CPU may hold (wl_live row width)
    max_memcgs: int = 1  # memcg rows (ids are not reused)
    rcu_cb_cap: int = 256  # call_rcu_sched callbacks one CPU may have queued


# Inbox rings per CPU: ring cpu * NR_RINGS + RING_IPI carries IPIs (handled in irq
# context), ring cpu * NR_RINGS + RING_OBJECTS objects handed over by other CPUs, ring
# cpu * NR_RINGS + RING_WORK the CPU's workqueue (schedule_work() queues locally).
NR_RINGS = 3
RING_IPI = 0
RING_OBJECTS = 1
RING_WORK = 2


# Locks after the zone locks, list_locks and alien locks: the last NR_MISC_LOCKS rows.
NR_MISC_LOCKS = 2
MISC_LOCK_RCU = 0  # rcu_state's lock (grace-period start and completion)
MISC_LOCK_SLAB_MUTEX = 1  # slab_mutex / memcg_slab_mutex: cache rows, memcg caches
# Virtual-time mode: extra_locks = 2, the vclock row and its node-cost row (spinlock.py)
VIRTUAL_EXTRA_LOCKS = 2
assert VCLOCK_ROW_FROM_END == NR_MISC_LOCKS + VIRTUAL_EXTRA_LOCKS


@njit(cache=True, inline="always")
def list_lock_row(nr_nodes, cache, node):
    """Lock row of kmem_cache_node(cache, node)->list_lock (after the zone locks)."""
    return nr_nodes + cache * nr_nodes + node


@njit(cache=True, inline="always")
def alien_lock_row(nr_nodes, max_caches, cache, node, remote):
    """Lock row of SLAB's alien cache on `node` for objects of `remote` (alc->lock)."""
    return nr_nodes + max_caches * nr_nodes + (cache * nr_nodes + node) * nr_nodes + remote


@njit(cache=True, inline="always")
def ac_cpu_row(nr_cpus, cache, cpu):
    """array_cache row of SLAB's per-CPU array of `cache` on `cpu` (cpu_cache_get)."""
    return cache * nr_cpus + cpu


@njit(cache=True, inline="always")
def ac_shared_row(nr_cpus, nr_nodes, max_caches, cache, node):
    """array_cache row of the shared array of kmem_cache_node(cache, node) (n->shared),
    after every cache's per-CPU rows."""
    return max_caches * nr_cpus + cache * nr_nodes + node


@njit(cache=True, inline="always")
def ac_alien_row(nr_cpus, nr_nodes, max_caches, cache, node, remote):
    """array_cache row of the alien array on `node` for objects of `remote`
    (n->alien[remote]), after every shared row."""
    return max_caches * (nr_cpus + nr_nodes) + (cache * nr_nodes + node) * nr_nodes + remote


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
    if cfg.inbox_capacity < nr_cpus:
        raise ValueError("inbox_capacity must hold one IPI from every CPU")
    slab = cfg.allocator == "slab"
    nr_locks = nr_nodes + cfg.max_caches * nr_nodes + cfg.extra_locks + NR_MISC_LOCKS
    if slab:
        nr_locks += cfg.max_caches * nr_nodes * nr_nodes
    # SLAB array caches: per CPU, the shared array per node, alien caches per node pair
    # (the rows ac_cpu_row, ac_shared_row and ac_alien_row number)
    ac_rows = cfg.max_caches * (nr_cpus + nr_nodes + nr_nodes * nr_nodes) if slab else 0
    b = LayoutBuilder()
    b.add("machine", np.int64, (1, MACHINE_NR_FIELDS))
    b.add("lock", np.int64, (nr_locks, STRUCTS["lock"].width(cl)))
    b.add("page", np.int64, (nr_pfns, PAGE_NR_FIELDS))
    b.add("zone", np.int64, (nr_nodes, STRUCTS["zone"].width(cl)))
    b.add("zonelist", np.int64, (nr_nodes, nr_nodes))
    b.add("inbox", np.int64, (nr_cpus * NR_RINGS, 2, STRUCTS["inbox"].width(cl)))
    b.add("slots", np.int64, (nr_cpus * NR_RINGS, cfg.inbox_capacity, 1 + cfg.msg_words))
    b.add("ram", np.uint8, nr_pfns * ps)
    b.add("shadow", np.uint8, (nr_pfns * ps) >> KASAN_SHADOW_SCALE_SHIFT)
    b.add("kmem_cache", np.int64, (cfg.max_caches, STRUCTS["kmem_cache"].width(cl)))
    b.add("kmem_cache_cpu", np.int64,
          (cfg.max_caches * nr_cpus, STRUCTS["kmem_cache_cpu"].width(cl)))
    b.add("kmem_cache_node", np.int64,
          (cfg.max_caches * nr_nodes, STRUCTS["kmem_cache_node"].width(cl)))
    b.add("array_cache", np.int64, (ac_rows, STRUCTS["array_cache"].width(cl)))
    b.add("ac_entry", np.int64, (ac_rows, cfg.ac_max_limit if slab else 0))
    b.add("task", np.int64, (nr_cpus * cfg.tasks_per_cpu, STRUCTS["task"].width(cl)))
    b.add("cpu", np.int64, (nr_cpus, STRUCTS["cpu"].width(cl)))
    b.add("kasan_report", np.int64, (1 + cfg.max_reports, STRUCTS["kasan_report"].nr_fields))
    b.add("config", np.int64, CONFIG_NR)
    b.add("kmalloc_map", np.int64, KMALLOC_MAP_LEN)
    b.add("ctl", np.int64, (1, STRUCTS["ctl"].width(cl)))
    b.add("wl", np.int64, (nr_cpus, STRUCTS["workload"].width(cl)))
    b.add("wl_live", np.int64, (nr_cpus, cfg.live_cap))
    b.add("memcg", np.int64, (cfg.max_memcgs, STRUCTS["memcg"].width(cl)))
    b.add("memcg_cache_params", np.int64, (cfg.max_caches, STRUCTS["memcg_cache_params"].width(cl)))
    b.add("memcg_caches", np.int64, (cfg.max_memcgs, cfg.max_caches))
    b.add("rcu", np.int64, (1, STRUCTS["rcu"].width(cl)))
    b.add("rcu_cb", np.int64, (nr_cpus, cfg.rcu_cb_cap, 4))
    b.meta.update(node_ranges=ranges, nr_locks=nr_locks, first_free_lock=nr_nodes)
    return b.build()


def mem_of(arena: Arena) -> Mem:
    """The Mem tuple of an arena's tables, in the order jitted code expects."""
    views = {name: arena.t[name] for name in arena.t.names()}
    views["ram64"] = views["ram"].view(np.int64)
    return Mem.of(views)


class Closing:
    """A context manager whose exit calls close() (Machine, and boot.Kernel on one)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Machine(Closing):
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
        m[0, MACHINE_TID_STEP] = 1 << max(0, (t.nr_cpus - 1).bit_length())
        for row in range(self.mem.lock.shape[0]):
            init_lock(self.mem.lock, row, LOCK_CLASS_ZONE if row < len(t.nodes) else LOCK_CLASS_OTHER,
                      node=row if row < len(t.nodes) else -1, stats=self.cfg.lock_stats)
        init_inboxes(self.mem.inbox, self.mem.slots)
        self.mem.config[CONFIG_NR_TASKS_PER_CPU] = self.cfg.tasks_per_cpu
        self.mem.config[CONFIG_MAX_REPORTS] = self.cfg.max_reports
        # the kernel build until a run applies its own (emulator/kernel/kconfig.py DEFAULT):
        # CONFIG_PREEMPT, CONFIG_SLUB_STATS=y
        self.mem.config[CONFIG_PREEMPT_MODEL] = 2
        self.mem.config[CONFIG_SLUB_STATS] = 1
        nr_locks = self.mem.lock.shape[0]
        self.mem.rcu[0, :] = 0
        self.mem.rcu[0, RCU_LOCK] = nr_locks - NR_MISC_LOCKS + MISC_LOCK_RCU
        self.mem.rcu[0, RCU_SLAB_MUTEX] = nr_locks - NR_MISC_LOCKS + MISC_LOCK_SLAB_MUTEX
        self.mem.memcg_caches[:, :] = -1
        self.mem.memcg_cache_params[:, :] = 0
        self.mem.memcg_cache_params[:, MEMCG_CACHE_PARAMS_ROOT_CACHE] = -1
        self.mem.memcg_cache_params[:, MEMCG_CACHE_PARAMS_MEMCG] = -1

    @property
    def name(self) -> str:
        return self.arena.name

    def close(self) -> None:
        self.mem = None
        self.arena.close()
