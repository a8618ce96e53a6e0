"""The workload generator: what each emulated CPU's workload task asks of the kernel.

What it models: a kernel subsystem on every CPU allocating and freeing objects of a
scenario's caches (kmalloc sizes and named caches), some of which are freed by another
CPU, on the same node or on another (a producer/consumer pattern, as network buffers
freed on the CPU that completes the I/O).  Every decision is drawn from the CPU's own
xorshift64 stream (`wl[cpu, WORKLOAD_RNG]`, seeded from the run seed and the CPU
number), so one seed gives one sequence of decisions per CPU.

One decision per op issued:
  - kind: decisions come in bursts of `burst` of one kind; a new burst allocates with
    probability 1 - live / (2 * live_target), which pulls `live` back to live_target
    (a free when nothing is held, an allocation never beyond live_cap = 2*target);
  - allocate: a cache spec drawn by weight; kmalloc_node(size) or
    kmem_cache_alloc_node(cache); the object is held in wl_live[cpu] when it completes;
  - free: a held object drawn uniformly (swap-remove); with probability remote_node it
    is handed to a random CPU on another node, with remote_cpu to another CPU of this
    node (through that CPU's RING_OBJECTS inbox; a full inbox means a local free);
    otherwise kfree / kmem_cache_free here;
  - every `shrink_every` issued ops a kmem_cache_shrink of a random spec's cache, every
    `reap_every` SLAB's cache_reap on this CPU;
  - memcg churn (memcg_lifetime > 0): at its first op and every memcg_lifetime ops after,
    the CPU's workload task moves to a new memcg (a child of the CPU's long-lived group
    memcg, itself a child of the root) and takes its previous memcg offline
    (OP_MEMCG_OFFLINE) while the objects allocated there live on, to be freed later here
    or by the CPUs they are handed to (with handover_at_offline, all of them are handed
    to other CPUs as the offline starts); at the end, once it holds nothing, it takes its
    last memcg offline too, then its group.
A CPU frees the objects its inbox holds before it issues its own next op (the consumer).

States: WL_RUN (issuing) -> WL_FREEING (op budget reached or ctl.stop: frees what it
holds, when free_at_end) -> WL_DONE (only takes objects handed to it).

Invariants (per CPU, at a quiescent point):
  live == number of objects in wl_live[cpu, :live] and live <= live_cap;
  allocs - alloc_failures == live + frees + sent_cpu + sent_node (its own objects);
  summed over CPUs: sent_cpu + sent_node == remote_frees + objects still in inboxes.
The data layout (the WP_* parameter vector, the WC_* spec table and the task's slot
codes) is declared first; the algorithms follow.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..kernel.memcontrol import memcg_alloc
from ..kernel.ops import (OP_ALLOC, OP_CACHE_FREE, OP_FREE, OP_KMALLOC, OP_MEMCG_OFFLINE, OP_REAP,
                          OP_SHRINK, op_start)
from ..kernel.slab_common import NUMA_NO_NODE
from ..machine import structs as S
from ..machine.atomics import load_relaxed
from ..machine.inbox import inbox_pending, inbox_recv, inbox_send
from ..machine.machine import NR_RINGS, RING_OBJECTS
from ..machine.prng import uniform_below, xorshift64

# -- data layout --------------------------------------------------------------------
# The parameter vector `wp` (read-only, the same on every CPU).
WP_LIVE_TARGET = 0
WP_LIVE_CAP = 1  # 2 * live_target + 1: the width of a wl_live row in use
WP_REMOTE_CPU_PPM = 2  # parts per million of frees handed to a CPU of the same node
WP_REMOTE_NODE_PPM = 3  # ... to a CPU on another node
WP_BURST = 4
WP_FREE_AT_END = 5
WP_SHRINK_EVERY = 6
WP_REAP_EVERY = 7
WP_BUDGET = 8  # ops issued per CPU, or -1 (a duration-bound run)
WP_NR_SPECS = 9
WP_TOTAL_WEIGHT = 10
WP_MEMCG_LIFETIME = 11  # ops issued per CPU between two memcg moves (0: no memcgs)
WP_HANDOVER_AT_OFFLINE = 12  # 1: a CPU hands every object it holds to other CPUs
#                              as it takes its old memcg offline
WP_NR = 13

# The cache spec table `wc` [nr_specs, WC_NR].
WC_KMALLOC = 0  # 1: kmalloc(size)/kfree, 0: kmem_cache_alloc(cache)/kmem_cache_free
WC_SIZE = 1
WC_CACHE = 2  # kmem_cache row (for kmalloc: the cache kmalloc_slab(size) picks)
WC_CUM_WEIGHT = 3  # cumulative weight: spec i is drawn for r in [cum[i-1], cum[i])
WC_NR = 4

# wl[cpu, WORKLOAD_STATE]
WL_RUN = 0
WL_FREEING = 1
WL_DONE = 2

# task[t, TASK_SLOT] while a workload op is in flight: what completes
SLOT_OWN_FREE = -1  # >= 0: an allocation of that spec
SLOT_RECEIVED_FREE = -2
SLOT_OTHER = -3  # shrink, reap

# wl_issue results
ISSUE_IDLE = 0  # nothing to do
ISSUE_STARTED = 1  # an op is in flight in the task
ISSUE_HANDED_OVER = 2  # a free was handed to another CPU: done, no kernel op here

PACK_SHIFT = 8  # wl_live and inbox words: (address << 8) | spec


# -- algorithms ----------------------------------------------------------------------
@njit(cache=True, inline="always")
def _next(k, cpu):
    x = xorshift64(k.wl[cpu, S.WORKLOAD_RNG])
    k.wl[cpu, S.WORKLOAD_RNG] = x
    return x


@njit(cache=True, inline="always")
def _start_free(k, wc, t, packed, slot):
    """kfree(obj) or kmem_cache_free(cache, obj) of a packed object."""
    spec = packed & ((1 << PACK_SHIFT) - 1)
    obj = packed >> PACK_SHIFT
    if wc[spec, WC_KMALLOC] != 0:
        op_start(k, t, OP_FREE, -1, NUMA_NO_NODE, 0, obj)
    else:
        op_start(k, t, OP_CACHE_FREE, wc[spec, WC_CACHE], NUMA_NO_NODE, 0, obj)
    k.task[t, S.TASK_SLOT] = slot


@njit(cache=True)
def _start_offline(k, t, cpu, m):
    """Take memcg m offline (rmdir of its cgroup), from this CPU's workload task."""
    op_start(k, t, OP_MEMCG_OFFLINE, -1, NUMA_NO_NODE, 0, m)
    k.task[t, S.TASK_SLOT] = SLOT_OTHER
    k.wl[cpu, S.WORKLOAD_OFFLINES] += 1


@njit(cache=True)
def pick_remote_cpu(k, cpu, same_node):
    """A random CPU other than `cpu`, on its node (same_node) or on another; -1 if none
    was found in 64 draws (e.g. a node with one CPU)."""
    nr = k.machine[0, S.MACHINE_NR_CPUS]
    node = k.cpu[cpu, S.CPU_NODE]
    for _ in range(64):
        c = uniform_below(_next(k, cpu), nr)
        if c != cpu and (k.cpu[c, S.CPU_NODE] == node) == same_node:
            return c
    return -1


@njit(cache=True)
def _hand_over(k, wp, msg, cpu, packed):
    """Maybe hand a free to another CPU's inbox; True if it was handed over."""
    r = uniform_below(_next(k, cpu), 1000000)
    node_ppm = wp[WP_REMOTE_NODE_PPM]
    if r >= node_ppm + wp[WP_REMOTE_CPU_PPM]:
        return False
    same = r >= node_ppm
    target = pick_remote_cpu(k, cpu, same)
    return target >= 0 and _send(k, msg, cpu, target, packed)


@njit(cache=True)
def _send(k, msg, cpu, target, packed):
    """Put a held object in `target`'s inbox, counted as sent within or across nodes;
    False (counted in inbox_full) if the inbox is full."""
    msg[0] = packed
    if not inbox_send(k.inbox, k.slots, target * NR_RINGS + RING_OBJECTS, msg):
        k.wl[cpu, S.WORKLOAD_INBOX_FULL] += 1
        return False
    if k.cpu[target, S.CPU_NODE] == k.cpu[cpu, S.CPU_NODE]:
        k.wl[cpu, S.WORKLOAD_SENT_CPU] += 1
    else:
        k.wl[cpu, S.WORKLOAD_SENT_NODE] += 1
    return True


@njit(cache=True)
def _hand_over_all(k, wp, msg, cpu):
    """Hand every object this CPU holds to other CPUs (on another node with probability
    remote_node / (remote_cpu + remote_node), else on this node; either when only one
    is possible): they free them while the old memcg goes offline."""
    live = k.wl[cpu, S.WORKLOAD_LIVE]
    keep = 0
    both = wp[WP_REMOTE_CPU_PPM] + wp[WP_REMOTE_NODE_PPM]
    for i in range(live):
        packed = k.wl_live[cpu, i]
        same = both > 0 and uniform_below(_next(k, cpu), both) >= wp[WP_REMOTE_NODE_PPM]
        target = pick_remote_cpu(k, cpu, same)
        if target < 0:
            target = pick_remote_cpu(k, cpu, not same)
        if not (target >= 0 and _send(k, msg, cpu, target, packed)):
            k.wl_live[cpu, keep] = packed
            keep += 1
    k.wl[cpu, S.WORKLOAD_LIVE] = keep


@njit(cache=True, inline="always")
def _spec_by_weight(wc, r):
    i = 0
    while wc[i, WC_CUM_WEIGHT] <= r:
        i += 1
    return i


@njit(cache=True, _nrt=False)  # per op: no reference counting (kernel/fastpath.py)
def wl_issue(k, wp, wc, msg, cpu, t, allow_new):
    """Issue the next op of CPU `cpu`'s workload into its (idle) task t.

    Returns ISSUE_STARTED, ISSUE_HANDED_OVER or ISSUE_IDLE.  With allow_new false (a
    pause) nothing is issued."""
    if not allow_new:
        return ISSUE_IDLE
    w = k.wl
    ring = cpu * NR_RINGS + RING_OBJECTS
    if inbox_pending(k.inbox, ring) > 0 and inbox_recv(k.inbox, k.slots, ring, msg):
        _start_free(k, wc, t, msg[0], SLOT_RECEIVED_FREE)
        return ISSUE_STARTED
    state = w[cpu, S.WORKLOAD_STATE]
    if state == WL_RUN:
        budget = wp[WP_BUDGET]
        if (budget >= 0 and w[cpu, S.WORKLOAD_ISSUED] >= budget) or \
                load_relaxed(k.ctl, (0, S.CTL_STOP)) != 0:
            state = WL_FREEING if wp[WP_FREE_AT_END] != 0 else WL_DONE
            w[cpu, S.WORKLOAD_STATE] = state
    if state == WL_DONE:
        return ISSUE_IDLE
    live = w[cpu, S.WORKLOAD_LIVE]
    if state == WL_FREEING:
        if live == 0:
            m = k.task[t, S.TASK_MEMCG]
            if m >= 0:  # the last memcg goes offline once its objects are freed
                k.task[t, S.TASK_MEMCG] = -1
                _start_offline(k, t, cpu, m)
                return ISSUE_STARTED
            parent = k.wl[cpu, S.WORKLOAD_MEMCG_PARENT]
            if parent >= 0:  # then the group above it (rmdir, children first)
                k.wl[cpu, S.WORKLOAD_MEMCG_PARENT] = -1
                _start_offline(k, t, cpu, parent)
                return ISSUE_STARTED
            w[cpu, S.WORKLOAD_STATE] = WL_DONE
            return ISSUE_IDLE
        w[cpu, S.WORKLOAD_LIVE] = live - 1
        _start_free(k, wc, t, k.wl_live[cpu, live - 1], SLOT_OWN_FREE)
        return ISSUE_STARTED
    issued = w[cpu, S.WORKLOAD_ISSUED] + 1
    w[cpu, S.WORKLOAD_ISSUED] = issued
    every = wp[WP_MEMCG_LIFETIME]
    if every > 0 and (issued - 1) % every == 0:
        parent = k.wl[cpu, S.WORKLOAD_MEMCG_PARENT]
        if parent < 0:  # this CPU's workload group: the parent of its short-lived memcgs
            parent = memcg_alloc(k, cpu, -1)
            k.wl[cpu, S.WORKLOAD_MEMCG_PARENT] = parent
        new = memcg_alloc(k, cpu, parent) if parent >= 0 else -1
        if new >= 0:
            old = k.task[t, S.TASK_MEMCG]
            k.task[t, S.TASK_MEMCG] = new  # mem_cgroup_move_task()
            w[cpu, S.WORKLOAD_MEMCGS_CREATED] += 1
            if old >= 0:
                if wp[WP_HANDOVER_AT_OFFLINE] != 0:
                    _hand_over_all(k, wp, msg, cpu)
                _start_offline(k, t, cpu, old)
                return ISSUE_STARTED
    every = wp[WP_SHRINK_EVERY]
    if every > 0 and issued % every == 0:
        spec = uniform_below(_next(k, cpu), wp[WP_NR_SPECS])
        op_start(k, t, OP_SHRINK, wc[spec, WC_CACHE], NUMA_NO_NODE, 0, 0)
        k.task[t, S.TASK_SLOT] = SLOT_OTHER
        w[cpu, S.WORKLOAD_SHRINKS] += 1
        return ISSUE_STARTED
    every = wp[WP_REAP_EVERY]
    if every > 0 and issued % every == 0 and k.kmem_cache[wc[0, WC_CACHE], S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB:
        op_start(k, t, OP_REAP, -1, NUMA_NO_NODE, 0, 0)
        k.task[t, S.TASK_SLOT] = SLOT_OTHER
        w[cpu, S.WORKLOAD_REAPS] += 1
        return ISSUE_STARTED
    x = _next(k, cpu)
    left = w[cpu, S.WORKLOAD_BURST_LEFT]
    if left <= 0:
        target2 = 2 * wp[WP_LIVE_TARGET]
        w[cpu, S.WORKLOAD_BURST_KIND] = 1 if uniform_below(x, target2) >= live else 0
        left = wp[WP_BURST]
        x = _next(k, cpu)
    w[cpu, S.WORKLOAD_BURST_LEFT] = left - 1
    alloc = w[cpu, S.WORKLOAD_BURST_KIND] != 0
    if live == 0:
        alloc = True
    elif live >= wp[WP_LIVE_CAP] - 1:
        alloc = False
    if alloc:
        spec = _spec_by_weight(wc, uniform_below(x, wp[WP_TOTAL_WEIGHT]))
        if wc[spec, WC_KMALLOC] != 0:
            op_start(k, t, OP_KMALLOC, -1, NUMA_NO_NODE, wc[spec, WC_SIZE], 0)
        else:
            op_start(k, t, OP_ALLOC, wc[spec, WC_CACHE], NUMA_NO_NODE, wc[spec, WC_SIZE], 0)
        k.task[t, S.TASK_SLOT] = spec
        return ISSUE_STARTED
    i = uniform_below(x, live)
    packed = k.wl_live[cpu, i]
    k.wl_live[cpu, i] = k.wl_live[cpu, live - 1]
    w[cpu, S.WORKLOAD_LIVE] = live - 1
    if (wp[WP_REMOTE_CPU_PPM] | wp[WP_REMOTE_NODE_PPM]) != 0 and _hand_over(k, wp, msg, cpu, packed):
        return ISSUE_HANDED_OVER
    _start_free(k, wc, t, packed, SLOT_OWN_FREE)
    return ISSUE_STARTED


@njit(cache=True, _nrt=False)  # per op: no reference counting (kernel/fastpath.py)
def wl_complete(k, cpu, t):
    """Account for the workload op that just completed in task t."""
    w = k.wl
    slot = k.task[t, S.TASK_SLOT]
    if slot >= 0:
        res = k.task[t, S.TASK_RESULT]
        w[cpu, S.WORKLOAD_ALLOCS] += 1
        w[cpu, S.WORKLOAD_OPS] += 1
        if res <= 0:
            w[cpu, S.WORKLOAD_ALLOC_FAILURES] += 1
            return
        live = w[cpu, S.WORKLOAD_LIVE]
        k.wl_live[cpu, live] = (res << PACK_SHIFT) | slot
        live += 1
        w[cpu, S.WORKLOAD_LIVE] = live
        if live > w[cpu, S.WORKLOAD_LIVE_PEAK]:
            w[cpu, S.WORKLOAD_LIVE_PEAK] = live
    elif slot == SLOT_OWN_FREE:
        w[cpu, S.WORKLOAD_FREES] += 1
        w[cpu, S.WORKLOAD_OPS] += 1
    elif slot == SLOT_RECEIVED_FREE:
        w[cpu, S.WORKLOAD_REMOTE_FREES] += 1
        w[cpu, S.WORKLOAD_OPS] += 1


def workload_params(scenario, specs_rows: list[int], budget: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The `wp` vector and `wc` table of a scenario (specs_rows: each spec's cache row)."""
    w = scenario.workload
    wp = np.zeros(WP_NR, np.int64)
    wp[WP_LIVE_TARGET] = w.live_objects
    wp[WP_LIVE_CAP] = live_cap(w.live_objects)
    wp[WP_REMOTE_CPU_PPM] = round(w.remote_cpu * 1_000_000)
    wp[WP_REMOTE_NODE_PPM] = round(w.remote_node * 1_000_000)
    wp[WP_BURST] = w.burst
    wp[WP_FREE_AT_END] = 1 if w.free_at_end else 0
    wp[WP_SHRINK_EVERY] = w.shrink_every
    wp[WP_REAP_EVERY] = w.reap_every
    wp[WP_BUDGET] = -1 if budget is None else budget
    wp[WP_NR_SPECS] = len(scenario.caches)
    wp[WP_MEMCG_LIFETIME] = scenario.memcg.lifetime
    wp[WP_HANDOVER_AT_OFFLINE] = 1 if scenario.memcg.handover_at_offline else 0
    wc = np.zeros((len(scenario.caches), WC_NR), np.int64)
    cum = 0
    for i, (c, row) in enumerate(zip(scenario.caches, specs_rows)):
        cum += c.weight
        wc[i] = (1 if c.kmalloc else 0, c.size, row, cum)
    wp[WP_TOTAL_WEIGHT] = cum
    return wp, wc


def live_cap(live_objects: int) -> int:
    return 2 * live_objects + 1


def seed_workload(mem, seed: int) -> None:
    """Every CPU's generator state: WL_RUN, nothing held, its own PRNG stream; every
    task in the root memcg."""
    from ..machine.prng import STREAM_WORKLOAD, seed_stream

    mem.wl[:, :] = 0
    mem.wl[:, S.WORKLOAD_MEMCG_PARENT] = -1
    mem.task[:, S.TASK_MEMCG] = -1
    for cpu in range(mem.wl.shape[0]):
        mem.wl[cpu, S.WORKLOAD_RNG] = seed_stream(seed, STREAM_WORKLOAD, cpu)
