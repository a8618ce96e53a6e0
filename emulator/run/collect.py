"""What the runner reads out of a running or finished machine: snapshots and the summary.

What it models: the kernel's own reporting interfaces read from outside — /proc/slabinfo
(get_slabinfo), /proc/lock_stat, the SLUB stats files under /sys/kernel/slab/<cache>/,
KASAN's report log, /proc/buddyinfo-like page counts — plus the workload's counters.
Everything here reads the arena with plain numpy loads and never writes it, so the parent
can sample while workers run (a snapshot taken that way is not atomic: each counter is
exact, sums across CPUs may straddle an op; a pause gives a consistent one).

The stream (`stream.msgpack`) is a sequence of msgpack maps, each with "type":
  start     {scenario, topology, allocator, policy, mode, seed, cpus, workers}
  snapshot  {t, ops: [per cpu], issued, locks: [{node, acquisitions, contentions}],
             caches: [[name, num_slabs, num_objs]], free_pages: [per node], kasan}
  event     {t, event, ...}
  end       {t, exit}
written and flushed record by record, so a killed run keeps every complete record.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import msgpack
import numpy as np

from ..kernel.ops import OP_CACHE_CREATE, OP_NAMES, PH_CACHE_CREATE, phase_name
from ..machine import structs as S
from ..machine.spinlock import lock_stat_row
from ..report.slabinfo import kernel_slabinfo_rows

SCHEMA = 1


class StreamWriter:
    """Appends msgpack records to a file, flushed one by one."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = open(self.path, "ab")
        self._packer = msgpack.Packer()

    def write(self, record: dict) -> None:
        if self._f is None:
            return
        self._f.write(self._packer.pack(record))
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def git_commit() -> str:
    """The project's git commit (with "-dirty" for uncommitted changes), or "unknown"."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty",
                              "--abbrev=40"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


# -- counters --------------------------------------------------------------------------
def ops_per_cpu(mem) -> list[int]:
    return [int(v) for v in mem.wl[:, S.WORKLOAD_OPS]]


def workload_counters(mem) -> dict[str, list[int]]:
    names = ("issued", "ops", "allocs", "alloc_failures", "frees", "remote_frees", "sent_cpu",
             "sent_node", "inbox_full", "shrinks", "reaps", "live", "live_peak", "steps",
             "memcgs_created", "offlines")
    return {n: [int(v) for v in mem.wl[:, getattr(S, "WORKLOAD_" + n.upper())]] for n in names}


def _lock_name(kernel, row: int) -> tuple[str, str, str | None]:
    mem = kernel.mem
    cls = int(mem.lock[row, S.LOCK_CLASS])
    owner = int(mem.lock[row, S.LOCK_OWNER_OBJ])
    name = S.LOCK_CLASS_NAMES[cls] if 0 <= cls < len(S.LOCK_CLASS_NAMES) else "lock"
    kind = {S.LOCK_CLASS_ZONE: "zone", S.LOCK_CLASS_LIST_LOCK: "list_lock",
            S.LOCK_CLASS_ALIEN: "alien"}.get(cls, "other")
    cache = kernel.name_of(owner) if cls in (S.LOCK_CLASS_LIST_LOCK, S.LOCK_CLASS_ALIEN) and owner >= 0 else None
    return name, kind, cache


def lock_rows(kernel, all_locks: bool = False) -> list[dict]:
    """summary.json "locks": every lock that was ever taken (or every one)."""
    mem = kernel.mem
    out = []
    for row in range(mem.lock.shape[0]):
        if not all_locks and mem.lock[row, S.LOCK_ACQUISITIONS] == 0:
            continue
        name, kind, cache = _lock_name(kernel, row)
        stat = lock_stat_row(mem.lock, row)
        out.append({"name": name, "class": kind, "cache": cache, **stat})
    return out


def list_lock_per_node(mem) -> list[dict]:
    """Acquisitions, contentions and wait time (ns; virtual ns in virtual mode) of every
    list_lock, summed per node (snapshots)."""
    locks = mem.lock
    cls = locks[:, S.LOCK_CLASS]
    nodes = int(mem.machine[0, S.MACHINE_NR_NODES])
    out = []
    for nid in range(nodes):
        sel = (cls == S.LOCK_CLASS_LIST_LOCK) & (locks[:, S.LOCK_NODE] == nid)
        out.append({"node": nid, "acquisitions": int(locks[sel, S.LOCK_ACQUISITIONS].sum()),
                    "contentions": int(locks[sel, S.LOCK_CONTENTIONS].sum()),
                    "wait_ns": int(locks[sel, S.LOCK_WAIT_TOTAL].sum())})
    return out


def cache_counts(kernel) -> list[list]:
    """[name, num_slabs, num_objs] per live cache that has slabs (cheap: no list walks)."""
    mem = kernel.mem
    nodes = kernel.nr_nodes
    out = []
    for info in kernel.caches:
        s = info.row
        if mem.kmem_cache[s, S.KMEM_CACHE_STATE] != S.CACHE_ACTIVE:
            continue
        slabs, objs = slabs_and_objects(mem, s, nodes)
        if slabs:
            out.append([info.name, slabs, objs])
    return out


def slabs_and_objects(mem, s: int, nodes: int) -> tuple[int, int]:
    """Slabs of cache s and the objects they hold room for, over every node (SLUB
    counts total_objects; SLAB's slabs all hold `num`)."""
    nrow = mem.kmem_cache_node[s * nodes:(s + 1) * nodes]
    slabs = int(nrow[:, S.KMEM_CACHE_NODE_NR_SLABS].sum())
    if mem.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
        return slabs, int(nrow[:, S.KMEM_CACHE_NODE_TOTAL_OBJECTS].sum())
    return slabs, slabs * int(mem.kmem_cache[s, S.KMEM_CACHE_OBJECTS])


def free_pages(mem) -> list[int]:
    return [int(v) for v in mem.zone[:, S.ZONE_NR_FREE_PAGES]]


def zone_rows(kernel) -> list[dict]:
    """The page allocator per node: free pages, and where allocations were served."""
    mem = kernel.mem
    out = []
    for z, nid in enumerate(kernel.node_ids):
        r = mem.zone[z]
        out.append({"node": nid, "spanned_pages": int(r[S.ZONE_SPANNED_PAGES]),
                    "free_pages": int(r[S.ZONE_NR_FREE_PAGES]),
                    "alloc_calls": int(r[S.ZONE_ALLOC_CALLS]), "allocs": int(r[S.ZONE_ALLOCS]),
                    "fallbacks": int(r[S.ZONE_FALLBACKS]), "failures": int(r[S.ZONE_FAILURES]),
                    "injected_failures": int(r[S.ZONE_INJECTED_FAILURES]),
                    "frees": int(r[S.ZONE_FREES])})
    return out


def kasan_count(mem) -> int:
    return int(mem.kasan_report[0, 0])


def snapshot(kernel, t: float) -> dict:
    mem = kernel.mem
    kernel.sync_caches()
    return {"type": "snapshot", "t": round(t, 6), "ops": ops_per_cpu(mem),
            "issued": [int(v) for v in mem.wl[:, S.WORKLOAD_ISSUED]],
            "locks": list_lock_per_node(mem), "caches": cache_counts(kernel),
            "free_pages": free_pages(mem), "kasan": kasan_count(mem),
            "leaks": leak_summary(kernel), "jiffies": int(mem.ctl[0, S.CTL_JIFFIES]),
            "reaps": int(mem.cpu[:, S.CPU_REAPS].sum())}


# -- the summary -------------------------------------------------------------------------
def cache_rows(kernel) -> list[dict]:
    """summary.json "caches": slabinfo rows plus memcg/dead flags and the stat counters."""
    mem = kernel.mem
    nr_cpus = kernel.nr_cpus
    kernel.sync_caches()
    by_name = {c.name: c for c in kernel.caches}
    out = []
    for row in kernel_slabinfo_rows(kernel):
        info = by_name.get(row["name"])
        s = info.row if info else -1
        rec = dict(row)
        rec["memcg"] = int(info.memcg) if info and info.memcg >= 0 else None
        rec["dead"] = bool(s >= 0 and info.root >= 0
                           and mem.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_DEAD] != 0)
        if info and info.aliases:  # SLUB merging (kernel/merge.py): the names it serves
            rec["aliases"] = list(info.aliases)
            rec["refcount"] = int(mem.kmem_cache[s, S.KMEM_CACHE_REFCOUNT])
        if info and info.root >= 0:
            rec["root"] = kernel.root_name(info.root)
            rec["refcnt"] = int(mem.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_REFCNT])
        if s >= 0:
            cpus = mem.kmem_cache_cpu[s * nr_cpus:(s + 1) * nr_cpus]
            if mem.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
                items = S.SLUB_STAT_ITEMS
                base = S.CPU_STAT
            else:
                items = S.SLAB_STAT_ITEMS
                base = S.CPU_SLAB_STAT
            sums = cpus[:, base:base + len(items)].sum(axis=0)
            rec["stats"] = {n: int(v) for n, v in zip(items, sums)}
        out.append(rec)
    return out


def kasan_rows(kernel) -> list[dict]:
    mem = kernel.mem
    n = min(int(mem.kasan_report[0, 0]), mem.kasan_report.shape[0] - 1)
    out = []

    def cpu_id(c):
        return kernel.cpu_ids[c] if 0 <= c < kernel.nr_cpus else c

    for i in range(1, n + 1):
        r = [int(v) for v in mem.kasan_report[i]]
        bug = r[S.KASAN_REPORT_BUG]
        op, phase = r[S.KASAN_REPORT_OP], r[S.KASAN_REPORT_PHASE]
        cache = r[S.KASAN_REPORT_CACHE]
        size = r[S.KASAN_REPORT_SIZE]
        freed = None
        if r[S.KASAN_REPORT_FREED_CPU] >= 0 and r[S.KASAN_REPORT_FREED_OP] > 0:
            fop, fph = r[S.KASAN_REPORT_FREED_OP], r[S.KASAN_REPORT_FREED_PHASE]
            freed = {"cpu": cpu_id(r[S.KASAN_REPORT_FREED_CPU]),
                     "op": OP_NAMES[fop] if 0 <= fop < len(OP_NAMES) else str(fop),
                     "phase": phase_name(fop, fph)}
        if bug == S.BUG_CACHE_USE_AFTER_FREE:
            # the descriptor is gone: name what it was (root cache, memcg), kept at release
            root, memcg = r[S.KASAN_REPORT_FREED_ROOT], r[S.KASAN_REPORT_FREED_MEMCG]
            name = f"{kernel.root_name(root)}({cache}:m{memcg})" if root >= 0 else f"cache#{cache}"
            shadow = None
        else:
            name = kernel.name_of(cache) if cache >= 0 else None
            shadow = r[S.KASAN_REPORT_SHADOW]
        out.append({
            "bug": S.BUG_NAMES.get(bug, f"bug-{bug}"),
            "cpu": cpu_id(r[S.KASAN_REPORT_CPU]),
            "task": r[S.KASAN_REPORT_TASK],
            "op": OP_NAMES[op] if 0 <= op < len(OP_NAMES) else str(op),
            "phase": phase_name(op, phase),
            "object": r[S.KASAN_REPORT_ADDR],
            "size": size,
            "cache": name,
            "shadow": shadow,
            "freed_by": freed,
            # the task was preempted inside this op: the preemption race, not the
            # parallel one (a destroy on another CPU while this one ran straight on)
            "preempted": bool(r[S.KASAN_REPORT_PREEMPTED]),
            # the last events of both CPUs: what the freeing CPU was doing when the touch
            # came, and the op the reporting task ran before this one
            "freeing_cpu_now": None if r[S.KASAN_REPORT_FREED_CPU_OP] < 0 else {
                "op": OP_NAMES[r[S.KASAN_REPORT_FREED_CPU_OP]],
                "phase": phase_name(r[S.KASAN_REPORT_FREED_CPU_OP], r[S.KASAN_REPORT_FREED_CPU_PHASE])}
            if r[S.KASAN_REPORT_FREED_CPU_OP] > 0 else {"op": "none", "phase": None},
            "previous_op": OP_NAMES[r[S.KASAN_REPORT_CPU_PREV_OP]]
            if 0 < r[S.KASAN_REPORT_CPU_PREV_OP] < len(OP_NAMES) else None,
            "allocated_by": {"cpu": cpu_id(r[S.KASAN_REPORT_ALLOC_CPU]),
                             "op": "memcg_create_kmem_cache",
                             "phase": phase_name(OP_CACHE_CREATE, PH_CACHE_CREATE)}
            if bug == S.BUG_CACHE_USE_AFTER_FREE and r[S.KASAN_REPORT_ALLOC_CPU] >= 0 else None,
        })
    return out


def leak_summary(kernel) -> dict:
    """Dead memcg caches still alive (child caches of offline memcgs), what they hold,
    and the offline memcgs they pin, directly or through a child (not yet released)."""
    mem = kernel.mem
    nodes = kernel.nr_nodes
    dead = slabs = objs = pages = frozen = partial = 0
    p = mem.memcg_cache_params
    # where the slabs are: frozen ones (a cpu slab or on a cpu partial list: the
    # frozen-slab leak race leaves them there) and those on n->partial (3.16's discard
    # rule parks an empty one there), by cache row, in one pass over the page table
    is_slab = (mem.page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0
    is_frozen = is_slab & ((mem.page[:, S.PAGE_FREELIST] & S.SLUB_FC_FROZEN) != 0)
    owner = mem.page[is_frozen, S.PAGE_SLAB_CACHE]
    # a snapshot taken while workers run may catch a page between its flag and its
    # cache being written: such a page belongs to no cache yet (or any more)
    owner = owner[(owner >= 0) & (owner < mem.kmem_cache.shape[0])]
    frozen_by_cache = np.bincount(owner, minlength=mem.kmem_cache.shape[0])
    for s in range(mem.kmem_cache.shape[0]):
        if mem.kmem_cache[s, S.KMEM_CACHE_STATE] != S.CACHE_ACTIVE or p[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] < 0:
            continue
        if p[s, S.MEMCG_CACHE_PARAMS_DEAD] == 0:
            continue
        dead += 1
        n, o = slabs_and_objects(mem, s, nodes)
        slabs += n
        objs += o
        pages += n << int(mem.kmem_cache[s, S.KMEM_CACHE_ORDER])
        if mem.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
            frozen += int(frozen_by_cache[s])
            partial += int(mem.kmem_cache_node[s * nodes:(s + 1) * nodes,
                                               S.KMEM_CACHE_NODE_NR_PARTIAL].sum())
    used = min(int(mem.ctl[0, S.CTL_MEMCGS]), mem.memcg.shape[0])
    # an offline memcg is released as soon as nothing pins it: one still offline is
    # pinned, by a dead cache of its own or by a child memcg that a dead cache pins
    pinned = int((mem.memcg[:used, S.MEMCG_STATE] == S.MEMCG_OFFLINE).sum())
    # caches created for a memcg that had gone offline meanwhile (3.16 does not refuse
    # them): never marked dead, alive for good, pinning their memcg
    orphans = 0
    for s in range(mem.kmem_cache.shape[0]):
        m = p[s, S.MEMCG_CACHE_PARAMS_MEMCG]
        if mem.kmem_cache[s, S.KMEM_CACHE_STATE] == S.CACHE_ACTIVE and \
                p[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] >= 0 and p[s, S.MEMCG_CACHE_PARAMS_DEAD] == 0 \
                and m >= 0 and mem.memcg[m, S.MEMCG_STATE] != S.MEMCG_ONLINE:
            orphans += 1
    return {"dead_caches": dead, "dead_cache_slabs": slabs, "dead_cache_objects": objs,
            "dead_cache_pages": pages, "pinned_memcgs": pinned,
            "dead_cache_frozen_slabs": frozen, "dead_cache_node_partial_slabs": partial,
            "orphan_caches": orphans}


def _hierarchy_consistent(mem, used: int) -> bool:
    parent = mem.memcg[:used, S.MEMCG_PARENT]
    pages = mem.memcg[:used, S.MEMCG_KMEM_PAGES]
    below = np.zeros(used, np.int64)
    for m in range(used):
        if parent[m] >= 0:
            below[parent[m]] += pages[m]
    has_children = np.zeros(used, bool)
    has_children[parent[parent >= 0]] = True
    return bool((pages[has_children] == below[has_children]).all())


def memcg_summary(kernel) -> dict:
    """memcgs by state, and the child caches' life."""
    mem = kernel.mem
    used = min(int(mem.ctl[0, S.CTL_MEMCGS]), mem.memcg.shape[0])
    states = mem.memcg[:used, S.MEMCG_STATE]
    children = int(((mem.kmem_cache[:, S.KMEM_CACHE_STATE] == S.CACHE_ACTIVE)
                    & (mem.memcg_cache_params[:, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] >= 0)).sum())
    tpc = kernel.cfg.tasks_per_cpu
    creates = int(mem.rcu[0, S.RCU_CREATES])
    lat_total = int(mem.rcu[0, S.RCU_CREATE_LATENCY_TOTAL])
    return {"created": used,
            "online": int((states == S.MEMCG_ONLINE).sum()),
            "offline": int((states == S.MEMCG_OFFLINE).sum()),
            "released": int((states == S.MEMCG_RELEASED).sum()),
            "child_caches_alive": children,
            "works_run": int(mem.cpu[:, S.CPU_WORKS].sum()),
            "preemptions": int(mem.task[::tpc, S.TASK_PREEMPTIONS].sum()),
            "rcu_grace_periods": int(mem.rcu[0, S.RCU_GP_COMPLETED]),
            # patch 6 as posted: every offline's synchronize_sched(), under memcg_slab_mutex,
            # and what the creation works paid for it (kernel/mutex.py, ops._create_step)
            "offline_syncs": int(mem.rcu[0, S.RCU_OFFLINE_SYNCS]),
            "caches_created": creates,
            "creations_waited": int(mem.rcu[0, S.RCU_CREATE_WAITED]),
            "creation_latency_mean_us": round(lat_total / creates / 1000, 3) if creates else 0.0,
            "creation_latency_max_us": round(int(mem.rcu[0, S.RCU_CREATE_LATENCY_MAX]) / 1000, 3),
            "memcg_mutex_sleeps": int(mem.rcu[0, S.RCU_MEMCG_MUTEX_WAITS]),
            "root_cache_fallbacks": int(mem.cpu[:, S.CPU_ROOT_FALLBACKS].sum()),
            "groups": int((mem.memcg[:used, S.MEMCG_PARENT] < 0).sum()),
            # the kmem counter is hierarchical: a group's pages are its children's (its
            # own tasks never allocate), at the end as at any quiescent point
            "hierarchy_consistent": _hierarchy_consistent(mem, used),
            "exhausted": bool(int(mem.ctl[0, S.CTL_MEMCGS]) > mem.memcg.shape[0])}


def clock_summary(kernel) -> dict:
    """The machine clock (kernel/jiffies.py): jiffies at the end, HZ, the ns per step
    of the deterministic clock (0: wall time, -1: virtual time), and the machine seconds
    that makes."""
    from ..kernel.jiffies import HZ

    mem = kernel.mem
    j = int(mem.ctl[0, S.CTL_JIFFIES])
    return {"jiffies": j, "hz": HZ, "step_ns": int(mem.config[S.CONFIG_STEP_NS]),
            "steps": int(mem.ctl[0, S.CTL_CLOCK_STEPS]), "seconds": round(j / HZ, 3)}


def reap_summary(kernel) -> dict:
    """SLAB's cache_reap (mm/slab.c): whether the timers ran, the passes per CPU, the
    passes skipped because slab_mutex was held, and the slabs drain_freelist freed."""
    mem = kernel.mem
    cpus = kernel.nr_cpus
    reaped = mem.kmem_cache_cpu[:, S.CPU_SLAB_STAT + S.STAT_REAPED]
    dead_reaped = 0
    p = mem.memcg_cache_params
    for s in range(mem.kmem_cache.shape[0]):
        if p[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] >= 0:
            dead_reaped += int(reaped[s * cpus:(s + 1) * cpus].sum())
    return {"timer": bool(mem.config[S.CONFIG_CACHE_REAP]),
            "runs": int(mem.cpu[:, S.CPU_REAPS].sum()),
            "per_cpu": [int(v) for v in mem.cpu[:, S.CPU_REAPS]],
            "skipped_slab_mutex": int(mem.cpu[:, S.CPU_REAPS_SKIPPED].sum()),
            "slabs_reaped": int(reaped.sum()),
            "slabs_reaped_child_caches": dead_reaped}


def live_objects(kernel, wc: np.ndarray) -> dict[int, int]:
    """address -> cache row of every object the workloads hold (for the checker)."""
    from ..workload.generator import PACK_SHIFT, WC_CACHE

    mem = kernel.mem
    out = {}
    for cpu in range(kernel.nr_cpus):
        n = int(mem.wl[cpu, S.WORKLOAD_LIVE])
        for packed in mem.wl_live[cpu, :n]:
            packed = int(packed)
            addr = packed >> PACK_SHIFT
            spec = packed & ((1 << PACK_SHIFT) - 1)
            cache = _slab_cache_of(mem, addr)
            out[addr] = cache if cache >= 0 else int(wc[spec, WC_CACHE])
    # objects handed over and not yet taken: still allocated, in the receiver's inbox
    from ..machine.machine import NR_RINGS, RING_OBJECTS

    cap = mem.slots.shape[1]
    for cpu in range(kernel.nr_cpus):
        ring = cpu * NR_RINGS + RING_OBJECTS
        lo = int(mem.inbox[ring, S.INBOX_CONSUMER, S.INBOX_POS])
        hi = int(mem.inbox[ring, S.INBOX_PRODUCER, S.INBOX_POS])
        for pos in range(lo, hi):
            addr = int(mem.slots[ring, pos % cap, 1]) >> PACK_SHIFT
            out[addr] = _slab_cache_of(mem, addr)
    return out


def _slab_cache_of(mem, addr: int) -> int:
    """virt_to_head_page(addr)->slab_cache, read from Python (-1: not a slab page)."""
    pfn = addr >> int(mem.machine[0, S.MACHINE_PAGE_SHIFT])
    head = int(mem.page[pfn, S.PAGE_COMPOUND_HEAD])
    return int(mem.page[head if head >= 0 else pfn, S.PAGE_SLAB_CACHE])


def host_info() -> dict:
    import platform

    import psutil

    return {"hostname": platform.node(), "cpus": psutil.cpu_count(logical=True),
            "affinity": len(os.sched_getaffinity(0)), "machine": platform.machine(),
            "python": platform.python_version()}
