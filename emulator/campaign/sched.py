"""Schedule exploration strategies: which hosted CPU takes the next step, in jitted code.

What it models: the scheduler of a worker that hosts several emulated CPUs (grouped
mode, and deterministic mode where one worker hosts every CPU), as run/loop.py's
`worker_loop` does, with the choice of the CPU stepped at each step made by one of:

  STRAT_RANDOM   run/loop.py's choice: uniform from the worker's xorshift64 stream
                 (the same draws, so a `random` run is today's run of that seed);
  STRAT_PCT      PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, "A randomized
                 scheduler with probabilistic guarantees of finding bugs", ASPLOS 2010):
                 distinct random priorities per CPU, at least d; the highest-priority CPU
                 that can make progress runs; at the j-th of d-1 change points (random
                 steps in [0, k)) the CPU running drops to priority d-1-j;
  STRAT_BOUNDED  one schedule of a preemption-bounded (CHESS-style) search: the current
                 CPU keeps running until it is between two ops with nothing queued, or
                 makes no progress (blocked, idle); then the next CPU in index order takes
                 over (a free switch).  `cps`/`cpt` list the preemptions: before step
                 cps[j] the CPU with index cpt[j] takes over although the current one is
                 inside an op (at a phase boundary); cpt[j] equal to the current index is
                 a kernel preemption instead: the task is preempted by its CPU's kworker,
                 where run/loop.py's _maybe_preempt could have drawn one (a preemption
                 point with work or RCU callbacks waiting).  Every step at which a
                 preemption is possible is written to `points` as (step, current index,
                 kernel preemption possible), so that the search (campaign/explore.py)
                 knows the next schedules to try;
  STRAT_REPLAY   follow `replay` (a recorded schedule) step by step; when it ends the
                 loop returns RET_SCHEDULE_END.

A step is one call of run/loop.py's `_step` for the chosen CPU (its IPIs, then one phase
of the task it runs, or the next op); a step that makes no progress is a step too, so a
recorded schedule replays exactly, step for step, whatever the strategy.  Every step's
index into `cpus` is written to `schedule` (as worker_loop does) while it has room; a
step before which the bounded search preempted the CPU's task in favour of its kworker
is written as index + n (n hosted CPUs), and replay performs that preemption again.

State: `st` (ST_* words) and the strategy's arrays, owned by the Python wrapper
(campaign/strategies.py).  Control words are looked at every CTL_EVERY steps through
loop.py's `_control`; with st[ST_STOP_AT_REPORT] the loop stops right after the step that
made the first KASAN report (ctl.error and ctl.abort set, as --stop-on-error does), so a
recorded schedule ends at the bad access.

Invariants: st[ST_POS] == steps taken; ws[WS_SCHED_POS] <= schedule.shape[0]; under
STRAT_PCT, prio[i] >= d for every CPU that has not passed a change point, and the
priorities stay distinct.
"""

from __future__ import annotations

from numba import njit

from ..kernel.ops import OP_NONE, task_preemptible
from ..kernel.workqueue import work_pending
from ..machine import structs as S
from ..machine.atomics import load_relaxed, sched_yield, store_release
from ..run.loop import (CTL_EVERY, RET_ABORTED, RET_BATCH, WS_IDLE_SPINS, WS_SCHED_POS,
                        _control, _step, draw_cpu, preempt_to_kworker)

STRAT_RANDOM, STRAT_PCT, STRAT_BOUNDED, STRAT_REPLAY = 0, 1, 2, 3

RET_SCHEDULE_END = 3  # STRAT_REPLAY: the recorded schedule ran out

ST_STRATEGY = 0
ST_POS = 1  # steps taken
ST_CUR = 2  # STRAT_BOUNDED: index of the current CPU; STRAT_PCT: priority rank to step
ST_NEXT = 3  # the next change point (PCT) or preemption (bounded) to apply
ST_NR_POINTS = 4  # STRAT_BOUNDED: rows of `points` filled
ST_STOP_AT_REPORT = 5
ST_DEPTH = 6  # PCT: d
ST_NR = 8


@njit(cache=True)
def _between_ops(k, c, tpc):
    """CPU c's workload task is between two ops and nothing is queued for its kworker."""
    return (k.cpu[c, S.CPU_CURRENT] == 0 and k.task[c * tpc, S.TASK_OP] == OP_NONE
            and not work_pending(k, c))


@njit(cache=True)
def _can_preempt(k, c, tpc):
    """CPU c's workload task could be preempted before its next phase: it is inside an op
    at a preemption point (policy and kernel build, ops.task_preemptible) and something
    waits for the CPU (queued work or RCU callbacks), as run/loop.py's _maybe_preempt
    requires before its draw."""
    t = c * tpc
    if k.cpu[c, S.CPU_CURRENT] != 0 or k.task[t, S.TASK_OP] == OP_NONE:
        return False
    if not (work_pending(k, c) or k.cpu[c, S.CPU_RCU_CBS] > 0):
        return False
    return task_preemptible(k, t)


@njit(cache=True)
def _preempt(k, c, tpc):
    """preempt_schedule() to the kworker: _maybe_preempt's effect, chosen instead of drawn."""
    preempt_to_kworker(k, c, c * tpc)


@njit(cache=True)
def _of_rank(prio, n, rank):
    """The CPU index whose priority is the rank-th highest (0: the highest)."""
    for c in range(n):
        above = 0
        for d in range(n):
            if prio[d] > prio[c]:
                above += 1
        if above == rank:
            return c
    return 0


@njit(cache=True)
def explore_loop(k, wp, wc, cpus, ws, st, prio, cps, cpt, points, replay, schedule, max_steps,
                 msg, wmsg):
    """Take up to `max_steps` steps of the hosted CPUs under st[ST_STRATEGY].  Returns
    RET_BATCH, RET_FINISHED, RET_ABORTED (ctl.abort, or the first KASAN report under
    ST_STOP_AT_REPORT) or RET_SCHEDULE_END."""
    tpc = k.config[S.CONFIG_NR_TASKS_PER_CPU]
    n = cpus.shape[0]
    cap = schedule.shape[0]
    strategy = st[ST_STRATEGY]
    stop_at_report = st[ST_STOP_AT_REPORT] != 0
    allow_new = load_relaxed(k.ctl, (0, S.CTL_PAUSE)) == 0
    busy = False
    for _ in range(max_steps):
        pos = st[ST_POS]
        progress = False
        rec = -1  # what the schedule records for this step: i, or i + n (kernel preemption)
        if strategy == STRAT_REPLAY:
            if pos >= replay.shape[0]:
                return RET_SCHEDULE_END
            i = replay[pos]
            if i >= n:  # a kernel preemption before this step, as recorded
                i -= n
                if _can_preempt(k, cpus[i], tpc):
                    _preempt(k, cpus[i], tpc)
                    rec = i + n
            progress = _step(k, wp, wc, msg, wmsg, cpus[i], tpc, allow_new)
        elif strategy == STRAT_PCT:
            j = st[ST_NEXT]
            rank = st[ST_CUR]
            if rank == 0 and j < cps.shape[0] and pos >= cps[j]:
                # the j-th change point: the CPU running drops below every start value
                prio[_of_rank(prio, n, 0)] = st[ST_DEPTH] - 1 - j
                st[ST_NEXT] = j + 1
            i = _of_rank(prio, n, rank)
            progress = _step(k, wp, wc, msg, wmsg, cpus[i], tpc, allow_new)
            # a CPU that cannot run (blocked, idle) passes the next step to the one below it
            st[ST_CUR] = 0 if progress else (rank + 1) % n
        elif strategy == STRAT_BOUNDED:
            j = st[ST_NEXT]
            kernel_preempt = False
            if j < cps.shape[0] and cps[j] == pos:
                if cpt[j] == st[ST_CUR]:
                    kernel_preempt = True  # the task is preempted by its own kworker
                else:
                    st[ST_CUR] = cpt[j]
                st[ST_NEXT] = j + 1
            i = st[ST_CUR]
            c = cpus[i]
            if kernel_preempt and _can_preempt(k, c, tpc):
                _preempt(k, c, tpc)
                rec = i + n
            progress = _step(k, wp, wc, msg, wmsg, c, tpc, allow_new)
            if not progress or _between_ops(k, c, tpc):
                st[ST_CUR] = (i + 1) % n
            else:
                m = st[ST_NR_POINTS]
                if m < points.shape[0]:
                    points[m, 0] = pos + 1
                    points[m, 1] = i
                    points[m, 2] = 1 if _can_preempt(k, c, tpc) else 0
                    st[ST_NR_POINTS] = m + 1
        else:  # STRAT_RANDOM: worker_loop's draws
            i = draw_cpu(ws, n)
            progress = _step(k, wp, wc, msg, wmsg, cpus[i], tpc, allow_new)
        if progress:
            busy = True
        sp = ws[WS_SCHED_POS]
        if sp < cap:
            schedule[sp] = i if rec < 0 else rec
            ws[WS_SCHED_POS] = sp + 1
        st[ST_POS] = pos + 1
        if stop_at_report and k.kasan_report[0, 0] > 0:
            store_release(k.ctl, (0, S.CTL_ERROR), 1)
            store_release(k.ctl, (0, S.CTL_ABORT), 1)
            return RET_ABORTED
        if (pos + 1) % CTL_EVERY == 0:
            r = _control(k, cpus, tpc, ws)
            if r >= 0:
                return r
            allow_new = load_relaxed(k.ctl, (0, S.CTL_PAUSE)) == 0
            if not busy:  # waiting for other workers (IPI acks, the end): give way
                ws[WS_IDLE_SPINS] += 1
                if ws[WS_IDLE_SPINS] % 16 == 0:
                    sched_yield()
            busy = False
    return RET_BATCH
