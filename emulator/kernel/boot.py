"""Booting the emulated kernel: page allocator, CPUs, and the slab allocator's caches.

What it models: mm_init()'s part that matters here — free_area_init + free_all_bootmem
(the buddy allocator over every node), then kmem_cache_init() (the allocator's own caches
and create_kmalloc_caches(), with the kmalloc size_index table) — and
kmem_cache_create() for named caches, from Python, before any worker runs.

Numbering: emulated CPUs and nodes are numbered by their position in the topology
(topology ids may be sparse, e.g. nodes 0 and 2); `Kernel.cpu_id`/`node_id` map back.

Invariants after boot: every cache row in use has state CACHE_ACTIVE, its geometry from
emulator/kernel/geometry.py, one kmem_cache_node row per node whose list_lock row is
`list_lock_row(...)`, and per CPU a kmem_cache_cpu row with tid == cpu (init_tid); no
slab page exists yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..machine import structs as S
from ..machine.machine import Closing, Machine, MachineConfig
from ..machine.prng import STREAM_CPU, seed_stream
from .geometry import (
    BYTES_PER_WORD,
    MachineParams,
    SlabGeometry,
    SlubGeometry,
    align_up,
    boot_geometries,
    cache_geometry,
    kmalloc_caches,
    kmalloc_index,
    kmalloc_slab,
    size_index_table,
)
from .merge import find_mergeable
from .page_alloc import free_area_init
from .slab_common import init_cache_rows

ALLOCATORS = ("slub", "slab")
# SLAB array_cache slots: enable_cpucache's largest limit is 120 and the shared array
# holds shared * batchcount = 8 * 60.
SLAB_AC_WIDTH = 8 * 60


@dataclass
class CacheInfo:
    name: str
    row: int
    geometry: SlubGeometry | SlabGeometry
    root: int = -1  # memcg child caches: the root cache row
    memcg: int = -1
    ctor: bool = False
    aliases: list[str] = field(default_factory=list)  # SLUB: names merged into it


class Kernel(Closing):
    """A booted emulated kernel on a fresh machine.  Use as a context manager."""

    def __init__(self, topology, allocator: str = "slub", *, kasan: bool = True,
                 lock_stats: bool = True, seed: int = 0, extra_caches: int = 16,
                 track_full_slabs: bool = False, cfg: MachineConfig | None = None,
                 live_cap: int = 0, max_memcgs: int = 1, slab_nomerge: bool = False,
                 extra_locks: int = 0):
        if allocator not in ALLOCATORS:
            raise ValueError(f"allocator must be slub or slab, not {allocator!r}")
        self.topology = topology
        self.allocator = allocator
        self.slab_nomerge = slab_nomerge  # slub_nomerge on the command line (merge.py)
        self.mp = MachineParams.from_topology(topology)
        geoms = boot_geometries(allocator, self.mp)
        if cfg is None:
            cfg = MachineConfig(allocator=allocator, kasan=kasan, lock_stats=lock_stats,
                                max_caches=len(geoms) + extra_caches,
                                inbox_capacity=max(1024, 1 << (topology.nr_cpus - 1).bit_length()),
                                ac_max_limit=SLAB_AC_WIDTH, live_cap=live_cap,
                                max_memcgs=max_memcgs, extra_locks=extra_locks)
        self.cfg = cfg
        self.machine = Machine(topology, cfg)
        try:
            self.mem = self.machine.mem
            self.node_ids = [n.id for n in topology.nodes]
            self.cpu_ids = [c.id for c in topology.cpus]
            self.caches: list[CacheInfo] = []
            self.by_name: dict[str, CacheInfo] = {}
            self._boot(geoms, seed, track_full_slabs)
        except BaseException:
            self.machine.close()
            raise

    # -- boot -------------------------------------------------------------------------
    def _boot(self, geoms, seed: int, track_full_slabs: bool) -> None:
        k = self.mem
        t = self.topology
        free_area_init(k, t, self.machine.layout.meta["node_ranges"])
        k.config[S.CONFIG_TRACK_FULL_SLABS] = 1 if track_full_slabs else 0
        node_pos = {nid: i for i, nid in enumerate(self.node_ids)}
        tpc = self.cfg.tasks_per_cpu
        for i, c in enumerate(t.cpus):
            nid = node_pos[c.node]
            k.cpu[i, :] = 0
            k.cpu[i, S.CPU_NODE] = nid
            k.cpu[i, S.CPU_MEM_NODE] = self._mem_node(nid)
            k.cpu[i, S.CPU_RNG] = seed_stream(seed, STREAM_CPU, i)
            for j in range(tpc):
                k.task[i * tpc + j, :] = 0
                k.task[i * tpc + j, S.TASK_CPU] = i
        k.kmem_cache[:, :] = 0
        k.kmem_cache[:, S.KMEM_CACHE_STATE] = S.CACHE_FREE
        k.kmem_cache[:, S.KMEM_CACHE_MEMCG_PARAMS] = -1
        k.kmem_cache[:, S.KMEM_CACHE_ROOT_CACHE] = -1
        k.kmem_cache[:, S.KMEM_CACHE_FREELIST_CACHE] = -1
        k.kmalloc_map[:] = -1
        k.kasan_report[:, :] = 0
        for g in geoms:
            self._create(g)
        # size_index[] and kmalloc_caches[] for kmalloc_slab() in jitted code
        table = size_index_table(self.allocator, self.mp)
        k.kmalloc_map[: len(table)] = table
        for name, size in kmalloc_caches(self.allocator, self.mp):
            idx = kmalloc_index(size, self.mp, self.allocator)
            if 0 <= idx < 32 and name in self.by_name:
                k.kmalloc_map[S.KMALLOC_CACHES_AT + idx] = self.by_name[name].row

    def _mem_node(self, nid: int) -> int:
        """node_to_mem_node(): nid, or the nearest node with memory."""
        k = self.mem
        for z in k.zonelist[nid]:
            if k.zone[z, S.ZONE_SPANNED_PAGES] > 0:
                return int(z)
        return nid

    def _create(self, g) -> CacheInfo:
        k = self.mem
        free = np.flatnonzero(k.kmem_cache[:, S.KMEM_CACHE_STATE] == S.CACHE_FREE)
        if free.size == 0:
            raise RuntimeError("no free kmem_cache row: raise MachineConfig.max_caches")
        s = int(free[0])
        row = k.kmem_cache[s]
        gen = row[S.KMEM_CACHE_GEN]
        row[:] = 0
        row[S.KMEM_CACHE_GEN] = gen
        row[S.KMEM_CACHE_STATE] = S.CACHE_ACTIVE
        row[S.KMEM_CACHE_OBJECT_SIZE] = g.object_size
        row[S.KMEM_CACHE_SIZE] = g.size
        row[S.KMEM_CACHE_ALIGN] = g.align
        row[S.KMEM_CACHE_FLAGS] = g.flags
        row[S.KMEM_CACHE_REFCOUNT] = 1
        row[S.KMEM_CACHE_MEMCG_PARAMS] = -1
        row[S.KMEM_CACHE_ROOT_CACHE] = -1
        row[S.KMEM_CACHE_FREELIST_CACHE] = -1
        # One line per descriptor field, the common ones above, SLUB's or SLAB's below:
        # the lists are alike in shape only (each allocator fills its own fields).
        if isinstance(g, SlubGeometry):
            row[S.KMEM_CACHE_ALLOCATOR] = S.ALLOCATOR_SLUB
            row[S.KMEM_CACHE_OFFSET] = g.offset
            row[S.KMEM_CACHE_INUSE] = g.inuse
            row[S.KMEM_CACHE_ORDER] = g.order
            row[S.KMEM_CACHE_OBJECTS] = g.objects
            row[S.KMEM_CACHE_MIN_ORDER] = g.min_order
            row[S.KMEM_CACHE_MIN_OBJECTS] = g.min_objects
            row[S.KMEM_CACHE_MIN_PARTIAL] = g.min_partial
            row[S.KMEM_CACHE_CPU_PARTIAL_OBJECTS] = g.cpu_partial
            row[S.KMEM_CACHE_REMOTE_NODE_DEFRAG_RATIO] = 1000
        else:
            row[S.KMEM_CACHE_ALLOCATOR] = S.ALLOCATOR_SLAB
            row[S.KMEM_CACHE_ORDER] = g.gfporder
            row[S.KMEM_CACHE_OBJECTS] = g.num
            row[S.KMEM_CACHE_COLOUR] = g.colour
            row[S.KMEM_CACHE_COLOUR_OFF] = g.colour_off
            row[S.KMEM_CACHE_OFF_SLAB] = 1 if g.off_slab else 0
            row[S.KMEM_CACHE_FREELIST_SIZE] = g.freelist_size
            row[S.KMEM_CACHE_LIMIT] = g.limit
            row[S.KMEM_CACHE_BATCHCOUNT] = g.batchcount
            row[S.KMEM_CACHE_SHARED] = g.shared
            row[S.KMEM_CACHE_ALIEN_LIMIT] = g.alien_limit
            row[S.KMEM_CACHE_FREELIST_IDX_SIZE] = g.freelist_idx_size
            if g.off_slab:
                fc = kmalloc_slab(g.freelist_size, self.mp, "slab")
                row[S.KMEM_CACHE_FREELIST_CACHE] = self.by_name[fc].row
        init_cache_rows(k, s)  # the per-node and per-CPU rows, SLAB's arrays
        info = CacheInfo(g.name, s, g)
        self.caches.append(info)
        self.by_name[g.name] = info
        return info

    # -- the API ------------------------------------------------------------------------
    def kmem_cache_create(self, name: str, size: int, align: int = 0, flags: int = 0,
                          ctor: bool = False) -> int:
        """kmem_cache_create(): the cache row.  Under SLUB an existing cache may serve
        (__kmem_cache_alias, merge.py) unless the kernel has slab_nomerge; the name then
        maps to that cache's row."""
        if name in self.by_name:
            raise ValueError(f"a cache named {name!r} exists")
        if self.allocator == "slub":
            target = find_mergeable(self.caches, size, align, flags, ctor, self.mp,
                                    nomerge=self.slab_nomerge)
            if target is not None:
                return self._alias(target, name, size)
        g = cache_geometry(self.allocator, name, size, self.mp, align=align, flags=flags,
                           ctor=ctor)
        info = self._create(g)
        info.ctor = ctor
        return info.row

    def _alias(self, target: CacheInfo, name: str, size: int) -> int:
        """SLUB's __kmem_cache_alias() once find_mergeable() found `target`: one more
        user (s->refcount++), object_size and inuse grown to cover `size` (kzalloc clears
        whole objects), the name added as an alias (sysfs_slab_alias)."""
        k = self.mem
        s = target.row
        k.kmem_cache[s, S.KMEM_CACHE_REFCOUNT] += 1
        k.kmem_cache[s, S.KMEM_CACHE_OBJECT_SIZE] = max(int(k.kmem_cache[s, S.KMEM_CACHE_OBJECT_SIZE]), size)
        k.kmem_cache[s, S.KMEM_CACHE_INUSE] = max(int(k.kmem_cache[s, S.KMEM_CACHE_INUSE]),
                                                  align_up(size, BYTES_PER_WORD))
        target.aliases.append(name)
        self.by_name[name] = target
        return s

    def cache(self, name: str) -> int:
        return self.by_name[name].row

    def sync_caches(self) -> None:
        """Bring `caches` up to date with memcg child caches created and destroyed by
        jitted code: a child is named like the kernel's memcg caches,
        "<root>(<row>:m<memcg>)"."""
        k = self.mem
        by_row = {c.row: c for c in self.caches}
        keep = []
        for c in self.caches:
            active = k.kmem_cache[c.row, S.KMEM_CACHE_STATE] == S.CACHE_ACTIVE
            if c.root < 0 or (active and int(k.memcg_cache_params[c.row, S.MEMCG_CACHE_PARAMS_MEMCG]) == c.memcg
                              and int(k.memcg_cache_params[c.row, S.MEMCG_CACHE_PARAMS_ROOT_CACHE]) == c.root):
                keep.append(c)
            else:
                self.by_name.pop(c.name, None)
        self.caches = keep
        by_row = {c.row: c for c in self.caches}
        for row in range(k.kmem_cache.shape[0]):
            if k.kmem_cache[row, S.KMEM_CACHE_STATE] != S.CACHE_ACTIVE or row in by_row:
                continue
            root = int(k.memcg_cache_params[row, S.MEMCG_CACHE_PARAMS_ROOT_CACHE])
            memcg = int(k.memcg_cache_params[row, S.MEMCG_CACHE_PARAMS_MEMCG])
            parent = next((c for c in self.caches if c.row == root), None)
            if root < 0 or parent is None:
                continue
            info = CacheInfo(f"{parent.name}({row}:m{memcg})", row, parent.geometry, root, memcg)
            self.caches.append(info)
            self.by_name[info.name] = info

    def name_of(self, row: int) -> str:
        for c in self.caches:
            if c.row == row:
                return c.name
        return f"cache#{row}"

    def root_name(self, row: int) -> str:
        """The name of a root cache row (boot or named caches never go away)."""
        for c in self.caches:
            if c.row == row and c.root < 0:
                return c.name
        return f"cache#{row}"

    @property
    def nr_cpus(self) -> int:
        return len(self.cpu_ids)

    @property
    def nr_nodes(self) -> int:
        return len(self.node_ids)

    def task_of(self, cpu: int, i: int = 0) -> int:
        return cpu * self.cfg.tasks_per_cpu + i

    def close(self) -> None:
        self.mem = None
        self.machine.close()
