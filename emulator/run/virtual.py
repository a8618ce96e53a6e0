"""Virtual-time mode: a discrete-event run of every emulated CPU in one process.

What it models: the emulated machine's timing, not the host's.  Each emulated CPU has a
clock in virtual ns.  The next CPU to step is the one with the earliest clock (ties:
a seeded draw when the CPU was queued, so the order is reproducible); it runs one step
(loop.py's `_step`: its IPIs, then one phase of its task, or the next op), and its clock
advances by the modelled cost of what that step did (emulator/machine/costs.py):
  - lock work, as the lock functions account it while the phase runs
    (emulator/machine/spinlock.py, virtual time): the wait for a lock held in virtual
    time (a contention), the transfer of the lock's line from its last holder, and the
    body of each critical section;
  - the allocator's events of the step, from the stat counters of the caches its tasks
    work on (kmem_cache_cpu's CONFIG_SLUB_STATS items and SLAB's STATS_INC_* items, which
    the model always counts), each at its cost; a SLUB free that leaves the fast path
    also pays the transfer of the slab page's line from the page's node;
  - IPIs: each one handled costs the target `ipi.handle`, each acknowledged one costs
    its sender `ipi.send`;
  - a memcg offline's synchronize_sched() lasts at least `rcu.grace_period` from when
    it began waiting;
  - the workload handing an object to another CPU costs `run.handoff`;
  - a step that makes no progress (waiting for IPI acks or a grace period, or nothing
    to do) moves the clock to max(clock + poll, the next CPU's clock): poll is run.poll
    for a CPU that spins (an op in flight waits); for an idle one (no op in flight) it
    starts at run.poll and doubles with each idle step in a row, up to POLL_BACKOFF_MAX
    x run.poll (an idle CPU's wake-up latency), so that long idle spells take few steps.
The events are in a binary heap keyed (clock, tie); the loop and the heap are jitted.

State: `clock[c]` (ns), `tie[c]`, the heap, `acc[c, category]` (ns of each CPU's time
per costs.CATEGORIES), `shadow` (the stat counters already charged, per kmem_cache_cpu
row), `seen[c, ...]` (IPI counters already charged).  Invariants: clock[c] never
decreases; the heap holds every CPU once; sum(acc[c, :]) == clock[c] - start.

Simplifications (README, docs/virtual-time.md): a phase runs atomically at its CPU's
clock (no other CPU runs inside it), so lock waits are ordered by phase start; the
allocator events of a phase are charged after its lock work; a step's counters are
charged to the caches its tasks name at the end of the step, and to the caches of the
slabs of the objects it freed or allocated; a shrink, reap, offline, destroy or create
op, which touches caches it does not name, charges every cache row of its CPU when it
ends (so its events are charged at its end, not at the phase that did them); RCU callbacks (call_rcu_sched) run at the model's quiescent states
with no minimum grace period; the workload generator's own work costs nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..kernel.ops import OP_MEMCG_OFFLINE, OP_NONE, OP_SHRINK, PH_OFFLINE_SYNC
from ..machine import structs as S
from ..machine.prng import xorshift64
from ..machine.spinlock import NODE_COLUMN, VCLOCK_ROW_FROM_END
from ..workload.generator import WL_FREEING, WL_RUN, WP_BUDGET
from .loop import RET_ABORTED, RET_BATCH, RET_FINISHED, WS_NR, _control, _step, _timer_tick

# The run's parameters vector `vp` (ns unless said)
VP_IPI_SEND = 0
VP_IPI_HANDLE = 1
VP_RCU_GP = 2
VP_POLL = 3
VP_HANDOFF = 4
VP_STOP_AT = 5  # virtual ns at which ctl.stop is set (0: never)
VP_SAMPLE_AT = 6  # return to Python when the earliest clock reaches this (0: never)
VP_NR = 7

# The loop's private state vector `vs`
VS_RNG = 0  # tie draws
VS_STEPS = 1
VS_LAST_NODE = 2  # the node whose transfer costs the node row holds
VS_NR = 3

# per-CPU counters already charged (`seen`)
SEEN_IPI_ACKS = 0
SEEN_IPIS_HANDLED = 1
SEEN_SENT = 2
SEEN_GP_START = 3  # clock when its offline began waiting in synchronize_sched, or -1
SEEN_FREEING_AT = 4  # clock when the workload began freeing what it holds (WL_FREEING), or -1
SEEN_EMPTIED_AT = 5  # clock after the step that freed its last held object, or -1
SEEN_LAST_BUSY = 6  # clock after its last step that made progress
SEEN_POLL = 7  # the current poll interval of a CPU that keeps making no progress (ns)
SEEN_NR = 8
POLL_BACKOFF_MAX = 32  # a waiting CPU's poll interval grows to at most this x run.poll

NR_STAT = S.NR_SLUB_STAT_ITEMS + S.NR_SLAB_STAT_ITEMS
# Where each CPU's virtual time goes (acc's columns)
CATEGORIES = ("fastpath", "slowpath", "slab_pages", "remote_line", "lock_wait", "lock_transfer",
              "lock_body", "ipi", "rcu_wait", "handoff", "idle")
CAT = {n: i for i, n in enumerate(CATEGORIES)}
C_FAST = CAT["fastpath"]
C_SLOW = CAT["slowpath"]
C_REMOTE = CAT["remote_line"]
C_WAIT = CAT["lock_wait"]
C_XFER = CAT["lock_transfer"]
C_BODY = CAT["lock_body"]
C_IPI = CAT["ipi"]
C_RCU = CAT["rcu_wait"]
C_HANDOFF = CAT["handoff"]
C_IDLE = CAT["idle"]
NR_CAT = len(CATEGORIES)


# -- the event heap: (clock, tie) ascending; heap[i] is a CPU -------------------------
@njit(cache=True, inline="always")
def _less(clock, tie, a, b):
    return clock[a] < clock[b] or (clock[a] == clock[b] and tie[a] < tie[b])


@njit(cache=True)
def heap_sift_down(heap, n, clock, tie, i):
    while True:
        l = 2 * i + 1
        if l >= n:
            return
        m = l
        r = l + 1
        if r < n and _less(clock, tie, heap[r], heap[l]):
            m = r
        if _less(clock, tie, heap[m], heap[i]):
            x = heap[m]
            heap[m] = heap[i]
            heap[i] = x
            i = m
        else:
            return


@njit(cache=True)
def heap_init(heap, clock, tie):
    n = heap.shape[0]
    for i in range(n):
        heap[i] = i
    for i in range(n // 2 - 1, -1, -1):
        heap_sift_down(heap, n, clock, tie, i)


@njit(cache=True, inline="always")
def _next_clock(heap, clock):
    """The earliest clock among the CPUs other than heap[0] (its children)."""
    n = heap.shape[0]
    best = -1
    for j in (1, 2):
        if j < n:
            c = clock[heap[j]]
            if best < 0 or c < best:
                best = c
    return best


@njit(cache=True, inline="always")
def _charge_row(k, row, shadow, icost, icat, acc, c, free_slow_pfn, node_xfer, cnode):
    """Charge kmem_cache_cpu row `row`'s stat counters since they were last charged."""
    base = S.CPU_STAT
    t = 0
    for i in range(NR_STAT):
        v = k.kmem_cache_cpu[row, base + i]
        if v < shadow[row, i]:  # the row went to a new cache, its counters from 0
            shadow[row, i] = 0
        d = v - shadow[row, i]
        if d != 0:
            shadow[row, i] += d
            x = d * icost[i]
            acc[c, icat[i]] += x
            t += x
            if i == S.FREE_SLOWPATH and free_slow_pfn > 0:
                # __slab_free's cmpxchg_double on a slab page last written on its node
                pn = k.page[free_slow_pfn, S.PAGE_NODE]
                y = d * node_xfer[cnode, pn]
                acc[c, C_REMOTE] += y
                t += y
    return t


@njit(cache=True, _nrt=False)
def virtual_loop(k, wp, wc, heap, clock, tie, pos, cpu_node, node_xfer, level_cost, icost,
                 icat, shadow, seen, acc, mark_acc, vp, vs, ws, max_steps, msg, wmsg):
    """Step the earliest CPU, up to `max_steps` steps.  Returns RET_BATCH (again),
    RET_FINISHED, RET_ABORTED, or RET_BATCH with vp[VP_SAMPLE_AT] passed (a sample)."""
    tpc = k.config[S.CONFIG_NR_TASKS_PER_CPU]
    ncpu = clock.shape[0]
    nnodes = node_xfer.shape[0]
    L = k.lock
    vc = L.shape[0] - VCLOCK_ROW_FROM_END
    shift = k.machine[0, S.MACHINE_PAGE_SHIFT]
    npages = k.page.shape[0]
    L[vc, S.VCLOCK_X_CPU] = level_cost[0]
    L[vc, S.VCLOCK_X_SMT] = level_cost[1]
    L[vc, S.VCLOCK_X_PACKAGE] = level_cost[2]
    L[vc, S.VCLOCK_X_NODE] = level_cost[3]
    steps = 0
    every = 64
    while steps < max_steps:
        allow_new = k.ctl[0, S.CTL_PAUSE] == 0
        for _ in range(every):
            c = heap[0]
            now = clock[c]
            cn = cpu_node[c]
            L[vc, S.VCLOCK_NOW] = now
            L[vc, S.VCLOCK_CPU] = c
            L[vc, S.VCLOCK_POS] = pos[c]
            L[vc, S.VCLOCK_WAIT] = 0
            L[vc, S.VCLOCK_XFER] = 0
            if vs[VS_LAST_NODE] != cn:
                for j in range(nnodes):
                    L[vc + 1, NODE_COLUMN[j]] = node_xfer[cn, j]
                vs[VS_LAST_NODE] = cn
            t = c * tpc
            in_sync = k.task[t, S.TASK_OP] == OP_MEMCG_OFFLINE and \
                k.task[t, S.TASK_PHASE] == PH_OFFLINE_SYNC
            if in_sync and seen[c, SEEN_GP_START] < 0:
                seen[c, SEEN_GP_START] = now

            # shrink, reap, memcg offline, cache destroy and create touch caches their
            # task does not name (the kmalloc of the shrink's array, every cache of a
            # memcg): the step that ends one charges every cache row of the CPU
            op0 = k.task[t, S.TASK_OP]
            op1 = k.task[t + 1, S.TASK_OP]

            progressed = _step(k, wp, wc, msg, wmsg, c, tpc, allow_new)

            after = L[vc, S.VCLOCK_NOW]
            wait = L[vc, S.VCLOCK_WAIT]
            xfer = L[vc, S.VCLOCK_XFER]
            acc[c, C_WAIT] += wait
            acc[c, C_XFER] += xfer
            acc[c, C_BODY] += after - now - wait - xfer
            cost = 0
            for j in range(tpc):
                # the op's cache, and the caches of the slabs of the object it freed and
                # of the one it allocated (a memcg child cache behind its root)
                obj = k.task[t + j, S.TASK_OBJ]
                pfn = obj >> shift if obj > 0 else 0
                if pfn >= npages:
                    pfn = 0
                res = k.task[t + j, S.TASK_RESULT]
                rpfn = res >> shift if res > 0 else 0
                if rpfn >= npages:
                    rpfn = 0
                s0 = k.task[t + j, S.TASK_CACHE]
                s1 = k.page[pfn, S.PAGE_SLAB_CACHE] if pfn > 0 else -1
                s2 = k.page[rpfn, S.PAGE_SLAB_CACHE] if rpfn > 0 else -1
                if s0 >= 0:
                    cost += _charge_row(k, s0 * ncpu + c, shadow, icost, icat, acc, c, pfn,
                                        node_xfer, cn)
                if s1 >= 0 and s1 != s0:
                    cost += _charge_row(k, s1 * ncpu + c, shadow, icost, icat, acc, c, pfn,
                                        node_xfer, cn)
                if s2 >= 0 and s2 != s0 and s2 != s1:
                    cost += _charge_row(k, s2 * ncpu + c, shadow, icost, icat, acc, c, 0,
                                        node_xfer, cn)
            if (op0 >= OP_SHRINK and k.task[t, S.TASK_OP] != op0) or \
                    (op1 >= OP_SHRINK and k.task[t + 1, S.TASK_OP] != op1):
                for s in range(k.kmem_cache.shape[0]):
                    cost += _charge_row(k, s * ncpu + c, shadow, icost, icat, acc, c, 0,
                                        node_xfer, cn)
            d = k.cpu[c, S.CPU_IPIS_HANDLED] - seen[c, SEEN_IPIS_HANDLED]
            if d > 0:
                seen[c, SEEN_IPIS_HANDLED] += d
                x = d * vp[VP_IPI_HANDLE]
                acc[c, C_IPI] += x
                cost += x
            d = k.cpu[c, S.CPU_IPI_ACKS] - seen[c, SEEN_IPI_ACKS]
            if d > 0:
                seen[c, SEEN_IPI_ACKS] += d
                x = d * vp[VP_IPI_SEND]
                acc[c, C_IPI] += x
                cost += x
            d = k.wl[c, S.WORKLOAD_SENT_CPU] + k.wl[c, S.WORKLOAD_SENT_NODE] - seen[c, SEEN_SENT]
            if d > 0:
                seen[c, SEEN_SENT] += d
                x = d * vp[VP_HANDOFF]
                acc[c, C_HANDOFF] += x
                cost += x
            new = after + cost
            if seen[c, SEEN_GP_START] >= 0:
                still = k.task[t, S.TASK_OP] == OP_MEMCG_OFFLINE and \
                    k.task[t, S.TASK_PHASE] == PH_OFFLINE_SYNC
                if not still:
                    end = seen[c, SEEN_GP_START] + vp[VP_RCU_GP]
                    if end > new:
                        acc[c, C_RCU] += end - new
                        new = end
                    seen[c, SEEN_GP_START] = -1
            # the free phase: from the end of the step after which the workload's next
            # issue turns to freeing what it holds (its budget is spent), to the end of
            # the step that freed its last object
            op = k.task[t, S.TASK_OP]
            if seen[c, SEEN_FREEING_AT] < 0:
                if op == OP_NONE and k.wl[c, S.WORKLOAD_STATE] == WL_RUN and wp[WP_BUDGET] >= 0 \
                        and k.wl[c, S.WORKLOAD_ISSUED] >= wp[WP_BUDGET] and k.cpu[c, S.CPU_CURRENT] == 0:
                    seen[c, SEEN_FREEING_AT] = new
                    for j in range(NR_CAT):
                        mark_acc[c, 0, j] = acc[c, j]
            elif seen[c, SEEN_EMPTIED_AT] < 0 and k.wl[c, S.WORKLOAD_STATE] == WL_FREEING and \
                    k.wl[c, S.WORKLOAD_LIVE] == 0 and (op == OP_NONE or op == OP_MEMCG_OFFLINE):
                seen[c, SEEN_EMPTIED_AT] = new
                for j in range(NR_CAT):
                    mark_acc[c, 1, j] = acc[c, j]
            if progressed:
                seen[c, SEEN_LAST_BUSY] = new
                seen[c, SEEN_POLL] = vp[VP_POLL]
            else:
                nxt = _next_clock(heap, clock)
                poll = vp[VP_POLL]
                if k.task[t, S.TASK_OP] == OP_NONE and k.task[t + 1, S.TASK_OP] == OP_NONE:
                    poll = seen[c, SEEN_POLL]  # idle, not spinning: it backs off
                    if poll < POLL_BACKOFF_MAX * vp[VP_POLL]:
                        seen[c, SEEN_POLL] = 2 * poll
                idle = new + poll
                if nxt > idle:
                    idle = nxt
                acc[c, C_IDLE] += idle - new
                new = idle
            clock[c] = new
            x = xorshift64(vs[VS_RNG])
            vs[VS_RNG] = x
            tie[c] = x >> 1
            heap_sift_down(heap, ncpu, clock, tie, 0)
        steps += every
        vs[VS_STEPS] += every
        first = clock[heap[0]]
        # the timer interrupt: jiffies follow the earliest CPU's virtual clock (the
        # machine clock of this mode, kernel/jiffies.py), and SLAB's reap timers fire
        L[vc, S.VCLOCK_NOW] = first
        _timer_tick(k, heap)
        if vp[VP_STOP_AT] > 0 and first >= vp[VP_STOP_AT] and k.ctl[0, S.CTL_STOP] == 0:
            k.ctl[0, S.CTL_STOP] = 1
        r = _control(k, heap, tpc, ws)
        if r >= 0:
            return r
        if vp[VP_SAMPLE_AT] > 0 and first >= vp[VP_SAMPLE_AT]:
            return RET_BATCH
    return RET_BATCH


# -- the Python side --------------------------------------------------------------------
class VirtualClock:
    """Sets up a booted kernel for virtual time and runs it (runner.py's virtual mode).

    `K` must have been booted with extra_locks=machine.VIRTUAL_EXTRA_LOCKS."""

    def __init__(self, K, topology, costs, seed: int):
        from ..machine.machine import NR_MISC_LOCKS, VIRTUAL_EXTRA_LOCKS
        from ..machine.prng import STREAM_WORKER, seed_stream
        from ..machine.spinlock import vclock_pos
        from topo import ConfigError

        k = K.mem
        n = K.nr_cpus
        if K.cfg.extra_locks != VIRTUAL_EXTRA_LOCKS:
            raise ValueError("virtual time needs Kernel(extra_locks=VIRTUAL_EXTRA_LOCKS)")
        if topology.nr_nodes > S.MAX_VIRTUAL_NODES:
            raise ConfigError(topology.name, "nodes",
                              f"at most {S.MAX_VIRTUAL_NODES} nodes in virtual mode",
                              topology.nr_nodes)
        self.K, self.costs = K, costs
        nodes = list(K.node_ids)
        self.cpu_node = np.array([nodes.index(c.node) for c in topology.cpus], np.int64)
        self.pos = np.array([vclock_pos(int(self.cpu_node[i]), c.package, c.core)
                             for i, c in enumerate(topology.cpus)], np.int64)
        nn = len(nodes)
        self.node_xfer = np.zeros((nn, nn), np.int64)
        for a in range(nn):
            for b in range(nn):
                self.node_xfer[a, b] = costs["line.node"] if a == b else \
                    costs.remote(topology.distance(nodes[a], nodes[b]))
        self.level_cost = np.array([costs["line.same_cpu"], costs["line.smt"],
                                    costs["line.package"], costs["line.node"]], np.int64)
        self.icost, self.icat = costs.item_costs()
        # every lock in virtual time, but the vclock rows, which stay unused locks
        self.vc = k.lock.shape[0] - VCLOCK_ROW_FROM_END
        assert self.vc == k.lock.shape[0] - NR_MISC_LOCKS - VIRTUAL_EXTRA_LOCKS
        k.lock[:, S.LOCK_STATS] = S.LOCK_STATS_VIRTUAL
        k.lock[:, S.LOCK_FREE_AT] = 0
        k.lock[:, S.LOCK_LAST_POS] = 0
        for r in (self.vc, self.vc + 1):
            self._clean_row(r)
        hold = costs.hold_by_class()
        for cls, col in enumerate((S.VCLOCK_HOLD_ZONE, S.VCLOCK_HOLD_LIST_LOCK, S.VCLOCK_HOLD_ALIEN,
                                   S.VCLOCK_HOLD_SHARED, S.VCLOCK_HOLD_OTHER)):
            k.lock[self.vc, col] = hold[cls]
        self.clock = np.zeros(n, np.int64)
        self.tie = np.zeros(n, np.int64)
        rng = seed_stream(seed, STREAM_WORKER, 0)
        for c in range(n):
            rng = int(xorshift64(np.int64(rng)))
            self.tie[c] = rng >> 1
        self.heap = np.zeros(n, np.int64)
        heap_init(self.heap, self.clock, self.tie)
        self.shadow = k.kmem_cache_cpu[:, S.CPU_STAT:S.CPU_STAT + NR_STAT].copy()
        self.seen = np.zeros((n, SEEN_NR), np.int64)
        self.seen[:, SEEN_IPI_ACKS] = k.cpu[:, S.CPU_IPI_ACKS]
        self.seen[:, SEEN_IPIS_HANDLED] = k.cpu[:, S.CPU_IPIS_HANDLED]
        self.seen[:, SEEN_GP_START] = -1
        self.seen[:, SEEN_POLL] = max(1, costs["run.poll"])
        self.seen[:, SEEN_FREEING_AT] = -1
        self.seen[:, SEEN_EMPTIED_AT] = -1
        self.acc = np.zeros((n, NR_CAT), np.int64)
        self.mark_acc = np.zeros((n, 2, NR_CAT), np.int64)  # acc at the free phase's ends
        self.vp = np.zeros(VP_NR, np.int64)
        self.vp[VP_IPI_SEND] = costs["ipi.send"]
        self.vp[VP_IPI_HANDLE] = costs["ipi.handle"]
        self.vp[VP_RCU_GP] = costs["rcu.grace_period"]
        self.vp[VP_POLL] = max(1, costs["run.poll"])
        self.vp[VP_HANDOFF] = costs["run.handoff"]
        self.vs = np.zeros(VS_NR, np.int64)
        self.vs[VS_RNG] = rng
        self.vs[VS_LAST_NODE] = -1
        self.ws = np.zeros(WS_NR, np.int64)

    def _clean_row(self, r: int) -> None:
        from ..machine.spinlock import init_lock

        init_lock(self.K.mem.lock, r, S.LOCK_CLASS_OTHER, stats=False)

    def run(self, wp, wc, max_steps: int, stop_at_ns: int = 0, sample_at_ns: int = 0) -> int:
        from .loop import worker_buffers

        k = self.K.mem
        self.vp[VP_STOP_AT] = stop_at_ns
        self.vp[VP_SAMPLE_AT] = sample_at_ns
        if not hasattr(self, "_buffers"):
            self._buffers = worker_buffers(k)
        return virtual_loop(k, wp, wc, self.heap, self.clock, self.tie, self.pos, self.cpu_node,
                            self.node_xfer, self.level_cost, self.icost, self.icat, self.shadow,
                            self.seen, self.acc, self.mark_acc, self.vp, self.vs, self.ws,
                            max_steps,
                            *self._buffers)

    @property
    def now(self) -> int:
        """The earliest clock (ns): every CPU has reached it."""
        return int(self.clock[self.heap[0]])

    @property
    def end(self) -> int:
        """The run's virtual duration (ns): the end of the last step that made progress
        (the idle steps the loop takes before it notices the end do not count)."""
        return int(max(self.seen[:, SEEN_LAST_BUSY].max(), 0))

    def busy_until(self) -> list[int]:
        """Per CPU, the end of its last step that made progress (ns)."""
        return [int(v) for v in self.seen[:, SEEN_LAST_BUSY]]

    def finish(self) -> None:
        """Leave the vclock rows as the unused locks reports expect."""
        for r in (self.vc, self.vc + 1):
            self._clean_row(r)

    def breakdown(self) -> dict:
        """Per category, the ns summed over CPUs, and each CPU's clock."""
        tot = self.acc.sum(axis=0)
        free_phase = [int(e - f) if f >= 0 and e >= f else None
                      for f, e in zip(self.seen[:, SEEN_FREEING_AT].tolist(),
                                      self.seen[:, SEEN_EMPTIED_AT].tolist())]
        done = (self.seen[:, SEEN_EMPTIED_AT] >= 0) & (self.seen[:, SEEN_FREEING_AT] >= 0)
        fp = (self.mark_acc[done, 1, :] - self.mark_acc[done, 0, :]).sum(axis=0)
        return {"per_category_ns": {n: int(tot[i]) for i, n in enumerate(CATEGORIES)},
                "free_phase_category_ns": {n: int(fp[i]) for i, n in enumerate(CATEGORIES)},
                "per_cpu_category_ns": {n: [int(v) for v in self.acc[:, i]]
                                        for i, n in enumerate(CATEGORIES)},
                "per_cpu_clock_ns": [int(v) for v in self.clock],
                # each CPU's time to free what it held at the end (WL_FREEING to empty)
                "free_phase_ns": free_phase}


__all__ = ["VirtualClock", "virtual_loop", "RET_ABORTED", "RET_BATCH", "RET_FINISHED"]
