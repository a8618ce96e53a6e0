"""The per-worker loop: one or several emulated CPUs stepped inside jitted code.

What it models: what each emulated CPU does all the time — take its IPIs (interrupts
are enabled at every phase boundary), run the next phase of its workload task's op, or
issue the next op from the workload generator.  A worker process hosts one emulated CPU
(true parallelism between workers) or several: then each step picks one hosted CPU from
the worker's xorshift64 stream, so the interleaving inside a worker is seeded
(`--mode deterministic` is this loop with one worker hosting every CPU, run inline by
runner.py; run/scripted.py is a different scheduler, for scripted tests).  Python is
entered only between batches of `max_steps` steps.

Control (the ctl row in shared memory, checked every CTL_EVERY steps with relaxed loads):
  start   workers arrive (wait_start), the parent arrives last and so starts them all;
  stop    graceful: CPUs stop issuing, free what they hold, finish;
  abort   leave at the next phase boundary (a worker failed, Ctrl-C, --stop-on-error);
  pause   finish the ops in flight, count in `paused`, wait (taking IPIs) until cleared:
          with every worker paused no op is in flight anywhere (a consistent snapshot);
  done    workers whose CPUs are all idle (workload done, nothing in flight, queued
          or waiting for a grace period) count themselves here, and uncount when work
          comes back;
  finish  set once every worker is done and the whole machine is idle (by the parent
          in parallel mode, which checks twice; by the only worker otherwise): every
          worker returns RET_FINISHED.
Each CPU has two tasks: the workload task (cpu * tpc) and its kworker (cpu * tpc + 1),
which runs the CPU's workqueue between the workload task's ops, or after preempting it
at a preemption point (fault injection: config preempt_ppm); cpu.current says which
runs.  Quiescent states for RCU-sched are reported between ops, at task switches and
while idle or blocked in synchronize_sched.
Invariants: an op in flight is only ever stepped by the worker hosting its CPU; a
worker returns RET_FINISHED only with no op in flight on its CPUs and their inboxes
empty; a worker that cannot make progress yields the host CPU (oversubscription).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..kernel.jiffies import tick
from ..kernel.ops import (OP_CACHE_CREATE, OP_CACHE_DESTROY, OP_NONE, OP_REAP, STEP_BLOCKED, STEP_DONE,
                          STEP_NEXT, handle_ipis, op_start, op_step, reap_timer, task_preemptible)
from ..kernel.rcu import rcu_qs
from ..kernel.slab_common import NUMA_NO_NODE, TF_REAP_TIMER, TF_SLEEPING
from ..kernel.workqueue import WORK_CACHE_CREATE, WORK_CACHE_REAP, work_dequeue, work_pending
from ..machine import structs as S
from ..machine.atomics import cpu_relax, fetch_add, load_acquire, load_relaxed, sched_yield, store_release
from ..machine.inbox import inbox_pending
from ..machine.machine import NR_RINGS
from ..machine.prng import uniform_below, xorshift64
from ..workload.generator import ISSUE_HANDED_OVER, ISSUE_STARTED, WL_DONE, wl_complete, wl_issue

# worker_loop results
RET_BATCH = 0  # max_steps ran out: call again
RET_FINISHED = 1  # every worker finished its workload; nothing is left in flight here
RET_ABORTED = 2  # ctl.abort was set

# The worker's private state vector `ws` (kept by its Python wrapper across batches).
WS_RNG = 0  # picks the hosted CPU of each step
WS_DONE_SIGNALLED = 1  # this worker counted itself in ctl.done
WS_SCHED_POS = 2  # entries of `schedule` filled (the wrapper drains and resets it)
WS_IDLE_SPINS = 3
WS_NR = 4

CTL_EVERY = 64  # steps between two looks at the control words
SPIN_BEFORE_YIELD = 256


@njit(cache=True)
def wait_start(k, timeout_spins):
    """Arrive at the start barrier and wait for the parent (nr_workers + 1 arrivals).
    False if ctl.abort was set (or the wait gave up) before the start."""
    fetch_add(k.ctl, (0, S.CTL_START), 1)
    need = k.ctl[0, S.CTL_NR_WORKERS] + 1
    spins = 0
    # acquire, paired with the last arrival's fetch_add (the parent's atomic_add)
    while load_acquire(k.ctl, (0, S.CTL_START)) < need:
        if load_relaxed(k.ctl, (0, S.CTL_ABORT)) != 0:
            return False
        spins += 1
        if spins % SPIN_BEFORE_YIELD == 0:
            sched_yield()
            if timeout_spins > 0 and spins > timeout_spins:
                return False
        else:
            cpu_relax()
    return True


@njit(cache=True, _nrt=False)  # per op: no reference counting (kernel/fastpath.py)
def _kworker_step(k, wmsg, cpu, kw):
    """The CPU runs its kworker: one phase of the work item in flight, or the next item.
    With nothing left to run it switches back to the workload task — unless that task
    was preempted and this CPU's RCU callbacks still wait for a grace period (it keeps
    the CPU, as a runnable kworker or softirq would), reporting quiescent states.
    False when it made no progress."""
    if k.task[kw, S.TASK_OP] == OP_NONE:
        if work_dequeue(k, cpu, wmsg):
            kind = wmsg[0]
            if kind == WORK_CACHE_CREATE:
                op_start(k, kw, OP_CACHE_CREATE, wmsg[1], NUMA_NO_NODE, 0, 0)
                k.task[kw, S.TASK_ITER2] = wmsg[2]
                k.task[kw, S.TASK_AUX] = wmsg[3]  # the clock when it was queued
            elif kind == WORK_CACHE_REAP:
                op_start(k, kw, OP_REAP, -1, NUMA_NO_NODE, 0, 0)
                k.task[kw, S.TASK_FLAGS] |= TF_REAP_TIMER
            else:
                op_start(k, kw, OP_CACHE_DESTROY, wmsg[1], NUMA_NO_NODE, 0, 0)
                k.task[kw, S.TASK_CACHE_GEN] = wmsg[3]  # the generation it was queued for
            k.cpu[cpu, S.CPU_WORKS] += 1
        else:
            t = kw - 1
            rcu_qs(k, cpu)  # may run callbacks, which may queue work
            if work_pending(k, cpu):
                return True
            if k.task[t, S.TASK_OP] != OP_NONE and k.cpu[cpu, S.CPU_RCU_CBS] > 0:
                return False
            k.cpu[cpu, S.CPU_CURRENT] = 0  # schedule() back to the workload task
            return True
    r = op_step(k, kw)
    k.wl[cpu, S.WORKLOAD_STEPS] += 1
    if r == STEP_BLOCKED and (k.task[kw, S.TASK_FLAGS] & TF_SLEEPING) != 0:
        # the kworker sleeps on a mutex (kernel/mutex.py): schedule() to the workload
        # task, which may hold that mutex itself (preempted inside an offline); the
        # kworker tries again at the workload task's next op boundary
        k.cpu[cpu, S.CPU_CURRENT] = 0
    return r != STEP_BLOCKED


@njit(cache=True, inline="always")
def _step(k, wp, wc, msg, wmsg, cpu, tpc, allow_new):
    """One step of CPU `cpu`: its IPIs, then one phase of the task it runs.  The
    workload task passes a quiescent state between ops, where the kworker also runs
    any queued work; at a preemption point (policy and fault injection) with work or
    RCU callbacks pending the workload task is preempted: a context switch, so a
    quiescent state too.  False if the CPU made no progress (idle, or blocked)."""
    handle_ipis(k, cpu)
    t = cpu * tpc
    if k.cpu[cpu, S.CPU_CURRENT] != 0:
        return _kworker_step(k, wmsg, cpu, t + 1)
    if k.task[t, S.TASK_OP] == OP_NONE:
        rcu_qs(k, cpu)  # between two ops: the return to user mode
        if work_pending(k, cpu) or k.task[t + 1, S.TASK_OP] != OP_NONE:
            k.cpu[cpu, S.CPU_CURRENT] = 1
            if (k.task[t + 1, S.TASK_FLAGS] & TF_SLEEPING) == 0:
                return _kworker_step(k, wmsg, cpu, t + 1)
            # the kworker sleeps on a mutex: woken, it tries again; if it sleeps on,
            # the workload task goes on with its next op
            _kworker_step(k, wmsg, cpu, t + 1)
            if k.cpu[cpu, S.CPU_CURRENT] != 0:
                return True
        r = wl_issue(k, wp, wc, msg, cpu, t, allow_new)
        if r != ISSUE_STARTED:
            return r == ISSUE_HANDED_OVER
    r = op_step(k, t)
    k.wl[cpu, S.WORKLOAD_STEPS] += 1
    if r == STEP_DONE:
        wl_complete(k, cpu, t)
    elif r == STEP_NEXT and k.config[S.CONFIG_PREEMPT_PPM] > 0:
        _maybe_preempt(k, cpu, t)
    return r != STEP_BLOCKED


@njit(cache=True, _nrt=False)  # per op: no reference counting (kernel/fastpath.py)
def _maybe_preempt(k, cpu, t):
    """preempt_schedule() at the boundary before the task's next phase: if it is a
    preemption point under the policy, something else wants the CPU (work queued, RCU
    callbacks waiting), and the fault injection's draw says so."""
    if not (work_pending(k, cpu) or k.cpu[cpu, S.CPU_RCU_CBS] > 0):
        return
    if not task_preemptible(k, t):
        return
    x = xorshift64(k.cpu[cpu, S.CPU_RNG])
    k.cpu[cpu, S.CPU_RNG] = x
    if uniform_below(x, 1000000) < k.config[S.CONFIG_PREEMPT_PPM]:
        preempt_to_kworker(k, cpu, t)


@njit(cache=True, _nrt=False, inline="always")
def draw_cpu(ws, n):
    """The seeded uniform choice of which of the worker's n hosted CPUs steps next (the
    only one when n == 1: no draw, so a one-CPU worker's stream is untouched)."""
    if n == 1:
        return 0
    x = xorshift64(ws[WS_RNG])
    ws[WS_RNG] = x
    return uniform_below(x, n)


@njit(cache=True, _nrt=False, inline="always")
def preempt_to_kworker(k, cpu, t):
    """preempt_schedule(): the workload task t is preempted and CPU `cpu` runs its
    kworker (the fault injection's draw, or a schedule exploration's choice)."""
    k.task[t, S.TASK_PREEMPTIONS] += 1
    k.task[t, S.TASK_PREEMPTED_OP] = k.task[t, S.TASK_OPS_STARTED]
    k.cpu[cpu, S.CPU_CURRENT] = 1
    rcu_qs(k, cpu)  # a context switch


@njit(cache=True)
def _quiet(k, cpus, tpc):
    """No op in flight on any hosted CPU (workload task or kworker)."""
    for i in range(cpus.shape[0]):
        c = cpus[i]
        if k.cpu[c, S.CPU_CURRENT] != 0:
            return False
        for j in range(tpc):
            if k.task[c * tpc + j, S.TASK_OP] != OP_NONE:
                return False
    return True


@njit(cache=True)
def _cpu_idle(k, c, tpc):
    """CPU c finished its workload and has nothing in flight or queued."""
    if k.wl[c, S.WORKLOAD_STATE] != WL_DONE or k.cpu[c, S.CPU_CURRENT] != 0:
        return False
    for j in range(tpc):
        if k.task[c * tpc + j, S.TASK_OP] != OP_NONE:
            return False
    if k.cpu[c, S.CPU_RCU_CBS] > 0:
        return False
    for ring in range(NR_RINGS):
        if inbox_pending(k.inbox, c * NR_RINGS + ring) > 0:
            return False
    return True


@njit(cache=True)
def _all_done(k, cpus, tpc):
    """Every hosted CPU is idle (_cpu_idle)."""
    for i in range(cpus.shape[0]):
        if not _cpu_idle(k, cpus[i], tpc):
            return False
    return True


@njit(cache=True)
def global_idle(k):
    """Every CPU of the machine is idle: nothing can start again (the end of a run)."""
    tpc = k.config[S.CONFIG_NR_TASKS_PER_CPU]
    for c in range(k.machine[0, S.MACHINE_NR_CPUS]):
        if not _cpu_idle(k, c, tpc):
            return False
    return True


@njit(cache=True)
def _pause(k, cpus):
    """Wait while ctl.pause is set, taking IPIs.  False on abort."""
    # seq_cst add: releases this worker's finished ops, paired with runner._pause's acquire
    fetch_add(k.ctl, (0, S.CTL_PAUSED), 1)
    spins = 0
    ok = True
    # acquire, paired with the parent's release_store of 0 after its checker's reads
    while load_acquire(k.ctl, (0, S.CTL_PAUSE)) != 0:
        if load_relaxed(k.ctl, (0, S.CTL_ABORT)) != 0:
            ok = False
            break
        for i in range(cpus.shape[0]):
            handle_ipis(k, cpus[i])
        spins += 1
        if spins % SPIN_BEFORE_YIELD == 0:
            sched_yield()
        else:
            cpu_relax()
    fetch_add(k.ctl, (0, S.CTL_PAUSED), -1)
    return ok


@njit(cache=True)
def _control(k, cpus, tpc, ws):
    """The control words: returns RET_ABORTED, RET_FINISHED, or -1 to go on.

    A worker counts itself in ctl.done while all its CPUs are idle, and takes itself
    out again when one gets work (an object handed over, an IPI).  The run ends when
    ctl.finish is set: by the parent in parallel mode once every worker is done and the
    whole machine stays idle, by the worker itself when it is the only one."""
    if load_relaxed(k.ctl, (0, S.CTL_ABORT)) != 0:
        return RET_ABORTED
    if k.ctl[0, S.CTL_STOP_ON_ERROR] != 0 and load_relaxed(k.kasan_report, (0, 0)) > 0:
        store_release(k.ctl, (0, S.CTL_ERROR), 1)  # pairs with the runner's acquire_load
        store_release(k.ctl, (0, S.CTL_ABORT), 1)
        return RET_ABORTED
    # acquire, paired with the store_release of finish (below, or runner._maybe_finish)
    if load_acquire(k.ctl, (0, S.CTL_FINISH)) != 0:
        return RET_FINISHED
    if load_relaxed(k.ctl, (0, S.CTL_PAUSE)) != 0 and _quiet(k, cpus, tpc):
        if not _pause(k, cpus):
            return RET_ABORTED
    if _all_done(k, cpus, tpc):
        if ws[WS_DONE_SIGNALLED] == 0:
            ws[WS_DONE_SIGNALLED] = 1
            fetch_add(k.ctl, (0, S.CTL_DONE), 1)  # releases our rows: runner's acquire_load
        if k.ctl[0, S.CTL_NR_WORKERS] == 1 and global_idle(k):
            store_release(k.ctl, (0, S.CTL_FINISH), 1)
            return RET_FINISHED
    elif ws[WS_DONE_SIGNALLED] != 0:
        ws[WS_DONE_SIGNALLED] = 0
        fetch_add(k.ctl, (0, S.CTL_DONE), -1)
    return -1


@njit(cache=True)
def _timer_tick(k, cpus):
    """The timer interrupt, at this worker's control point: jiffies follow the machine
    clock (kernel/jiffies.py: CTL_EVERY machine steps in deterministic mode, wall time
    otherwise), then each hosted CPU still running its workload fires its expired
    SLAB reap timer (deferrable: an idle CPU is not woken for it)."""
    now = tick(k, CTL_EVERY)
    if k.config[S.CONFIG_CACHE_REAP] == 0:
        return
    for i in range(cpus.shape[0]):
        c = cpus[i]
        if k.wl[c, S.WORKLOAD_STATE] != WL_DONE:
            reap_timer(k, c, now)


def worker_buffers(k):
    """The two message buffers `worker_loop` fills while it steps (one inbox slot's
    words each), allocated once per worker by its Python side: the loop itself allocates
    nothing, so it compiles without NRT and no NRT-compiled wrapper links the whole model
    into its machine code a second time."""
    n = k.slots.shape[2] - 1
    return np.zeros(n, np.int64), np.zeros(n, np.int64)


@njit(cache=True, _nrt=False)  # the steps allocate nothing: no reference counting
def worker_loop(k, wp, wc, cpus, ws, schedule, max_steps, msg, wmsg):
    """Step the hosted CPUs `cpus` for up to `max_steps` steps.

    With one hosted CPU every step is that CPU's; with several, each step's CPU is drawn
    from ws[WS_RNG] and, while `schedule` has room, recorded there (as the index into
    `cpus`).  `msg` and `wmsg` come from `worker_buffers`.  Returns RET_BATCH,
    RET_FINISHED or RET_ABORTED."""
    tpc = k.config[S.CONFIG_NR_TASKS_PER_CPU]
    n = cpus.shape[0]
    cap = schedule.shape[0]
    steps = 0
    while steps < max_steps:
        allow_new = load_relaxed(k.ctl, (0, S.CTL_PAUSE)) == 0
        busy = False
        for _ in range(CTL_EVERY):
            i = draw_cpu(ws, n)
            if n > 1:
                pos = ws[WS_SCHED_POS]
                if pos < cap:
                    schedule[pos] = i
                    ws[WS_SCHED_POS] = pos + 1
            if _step(k, wp, wc, msg, wmsg, cpus[i], tpc, allow_new):
                busy = True
        steps += CTL_EVERY
        _timer_tick(k, cpus)
        r = _control(k, cpus, tpc, ws)
        if r >= 0:
            return r
        if not busy:  # waiting for others (the end, IPI acks, a pause): give way
            ws[WS_IDLE_SPINS] += 1
            if ws[WS_IDLE_SPINS] % 16 == 0:
                sched_yield()
            else:
                cpu_relax()
    return RET_BATCH

