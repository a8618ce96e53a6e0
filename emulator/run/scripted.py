"""The scripted scheduler: every emulated CPU stepped in one process, in a seeded order.

It runs scripts of ops, for the kernel tests and the kernel warm-up (run/warmup.py).  It
is not `slabemu run --mode deterministic`: that mode is the worker loop (run/loop.py)
run inline by the runner, one worker hosting every CPU, with the workload generator.

What it models: a machine whose CPUs interleave at phase granularity.  Each step picks
one CPU (uniformly, from a xorshift64 stream seeded by the run seed, among the CPUs that
can make progress), lets it take its pending IPIs, then runs one phase of its current op
(or starts its next one).  The picked CPU of every step is written to the schedule, and
`replay` steps exactly that schedule again: one seed, or one schedule, gives one run,
byte for byte.  The same step functions (emulator/kernel/ops.py) run in parallel mode.
With config step_ns > 0 every step also advances the machine clock (jiffies) by that
many ns (kernel/jiffies.py); otherwise jiffies stand still.

Scripts (for tests and small experiments) are int64 rows [cpu, op, arg, node, slot, raw]:
  OP_ALLOC       arg = cache row, the object goes to `slot`
  OP_KMALLOC     arg = size, the object goes to `slot`
  OP_FREE        frees the object in `slot` (or `raw` when slot < 0)
  OP_CACHE_FREE  kmem_cache_free(arg, object in `slot`)
  OP_SHRINK      kmem_cache_shrink(arg)
A CPU runs its rows in script order.  A free whose slot has not been filled yet waits
(its CPU is not eligible) until the allocation filling it completes; a slot freed twice
frees the same address twice (a double free, on purpose).

State: `Sched` holds the script queues, slots, per-row results and completion steps,
the PRNG state and the schedule; all numpy, all advanced by jitted `sched_run`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..kernel.jiffies import tick
from ..kernel.ops import (
    OP_ALLOC,
    OP_CACHE_FREE,
    OP_FREE,
    OP_KMALLOC,
    STEP_DONE,
    handle_ipis,
    op_start,
    op_step,
)
from ..machine import structs as S
from ..machine.prng import STREAM_SCHED, seed_stream, uniform_below, xorshift64
from ..machine.inbox import inbox_pending
from ..machine.machine import NR_RINGS, RING_IPI

# script columns
COL_CPU, COL_OP, COL_ARG, COL_NODE, COL_SLOT, COL_RAW = range(6)
# slot states
SLOT_PENDING, SLOT_READY, SLOT_FREED = 0, 1, 2
# sched_run results
RUN_OK = 0  # the budget of steps ran out or the script finished
RUN_STUCK = 1  # work remains but no CPU can make progress


@dataclass
class Sched:
    script: np.ndarray  # [n, 6]
    queue: np.ndarray  # [nr_cpus, maxlen] script row indices per CPU
    qlen: np.ndarray  # [nr_cpus]
    qpos: np.ndarray  # [nr_cpus] next queue position
    cur: np.ndarray  # [nr_cpus] script row in flight, or -1
    slots: np.ndarray  # [nslots, 2]: address, state
    results: np.ndarray  # [n]: result of each row
    done_at: np.ndarray  # [n]: step at which each row completed, -1 if not yet
    rng: np.ndarray  # [1] PRNG state
    schedule: np.ndarray  # [capacity]: cpu picked at each step
    steps: np.ndarray  # [1] steps taken

    @classmethod
    def new(cls, script, nr_cpus: int, nslots: int, seed: int, capacity: int = 1 << 20):
        script = np.ascontiguousarray(script, dtype=np.int64).reshape(-1, 6)
        per = [np.flatnonzero(script[:, COL_CPU] == c) for c in range(nr_cpus)]
        maxlen = max([len(p) for p in per] + [1])
        queue = np.full((nr_cpus, maxlen), -1, np.int64)
        for c, p in enumerate(per):
            queue[c, :len(p)] = p
        n = len(script)
        return cls(script, queue, np.array([len(p) for p in per], np.int64),
                   np.zeros(nr_cpus, np.int64), np.full(nr_cpus, -1, np.int64),
                   np.zeros((max(nslots, 1), 2), np.int64), np.zeros(n, np.int64),
                   np.full(n, -1, np.int64), np.array([seed_stream(seed, STREAM_SCHED)], np.int64),
                   np.full(capacity, -1, np.int64), np.zeros(1, np.int64))

    def finished(self) -> bool:
        return bool((self.qpos >= self.qlen).all() and (self.cur < 0).all())

    def args(self):
        return (self.script, self.queue, self.qlen, self.qpos, self.cur, self.slots,
                self.results, self.done_at, self.rng, self.schedule, self.steps)


@njit(cache=True)
def _eligible(k, script, queue, qlen, qpos, cur, slots, cpu, tpc):
    """Can `cpu` make progress now?"""
    if inbox_pending(k.inbox, cpu * NR_RINGS + RING_IPI) > 0:
        return True
    if cur[cpu] >= 0:
        return True
    if qpos[cpu] >= qlen[cpu]:
        return False
    row = queue[cpu, qpos[cpu]]
    op = script[row, COL_OP]
    slot = script[row, COL_SLOT]
    if (op == OP_FREE or op == OP_CACHE_FREE) and slot >= 0 and slots[slot, 1] == SLOT_PENDING:
        return False
    return True


@njit(cache=True)
def _step_cpu(k, script, queue, qpos, cur, slots, results, done_at, cpu, tpc, step):
    handle_ipis(k, cpu)
    t = cpu * tpc
    if cur[cpu] < 0:
        if qpos[cpu] >= queue.shape[1] or queue[cpu, qpos[cpu]] < 0:
            return  # it only had IPIs to take
        row = queue[cpu, qpos[cpu]]
        op = script[row, COL_OP]
        slot = script[row, COL_SLOT]
        if (op == OP_FREE or op == OP_CACHE_FREE) and slot >= 0 and slots[slot, 1] == SLOT_PENDING:
            return
        qpos[cpu] += 1
        cur[cpu] = row
        op = script[row, COL_OP]
        arg = script[row, COL_ARG]
        node = script[row, COL_NODE]
        slot = script[row, COL_SLOT]
        if op == OP_ALLOC:
            op_start(k, t, op, arg, node, k.kmem_cache[arg, S.KMEM_CACHE_OBJECT_SIZE], 0)
        elif op == OP_KMALLOC:
            op_start(k, t, op, -1, node, arg, 0)
        elif op == OP_FREE or op == OP_CACHE_FREE:
            obj = script[row, COL_RAW]
            if slot >= 0:
                obj = slots[slot, 0]
                slots[slot, 1] = SLOT_FREED
            op_start(k, t, op, arg if op == OP_CACHE_FREE else -1, node, 0, obj)
        else:
            op_start(k, t, op, arg, node, 0, 0)
    r = op_step(k, t)
    if r == STEP_DONE:
        row = cur[cpu]
        res = k.task[t, S.TASK_RESULT]
        results[row] = res
        done_at[row] = step
        op = script[row, COL_OP]
        slot = script[row, COL_SLOT]
        if (op == OP_ALLOC or op == OP_KMALLOC) and slot >= 0:
            slots[slot, 0] = res
            slots[slot, 1] = SLOT_READY
        cur[cpu] = -1


@njit(cache=True)
def sched_run(k, script, queue, qlen, qpos, cur, slots, results, done_at, rng, schedule,
              steps, budget, replay):
    """Take up to `budget` steps.  replay=True follows `schedule` instead of the PRNG."""
    nr_cpus = qlen.shape[0]
    tpc = k.config[S.CONFIG_NR_TASKS_PER_CPU]
    elig = np.empty(nr_cpus, np.int64)
    for _ in range(budget):
        step = steps[0]
        if replay:
            if step >= schedule.shape[0] or schedule[step] < 0:
                return RUN_OK
            cpu = schedule[step]
            if not _eligible(k, script, queue, qlen, qpos, cur, slots, cpu, tpc):
                return RUN_STUCK
        else:
            n = 0
            for c in range(nr_cpus):
                if _eligible(k, script, queue, qlen, qpos, cur, slots, c, tpc):
                    elig[n] = c
                    n += 1
            if n == 0:
                for c in range(nr_cpus):
                    if qpos[c] < qlen[c] or cur[c] >= 0:
                        return RUN_STUCK
                return RUN_OK
            x = xorshift64(rng[0])
            rng[0] = x
            cpu = elig[uniform_below(x, n)]
            if step < schedule.shape[0]:
                schedule[step] = cpu
        _step_cpu(k, script, queue, qpos, cur, slots, results, done_at, cpu, tpc, step)
        k.cpu[cpu, S.CPU_STEPS] += 1
        if k.config[S.CONFIG_STEP_NS] > 0:  # a machine clock, when the test sets one
            tick(k, 1)
        steps[0] = step + 1
    return RUN_OK


def run(k, sched: Sched, budget: int = 1 << 40, replay: bool = False) -> int:
    return int(sched_run(k, *sched.args(), budget, replay))
