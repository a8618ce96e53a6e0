"""Stepping one op by hand to completion, for the kernel tests that follow a kernel trace
op by op (no runner, no workers)."""

from __future__ import annotations

from emulator.kernel.ops import STEP_BLOCKED, STEP_DONE, handle_ipis, op_step
from emulator.kernel.rcu import rcu_qs
from emulator.machine import structs as S


def finish_op(K, t, step=op_step, quiescent=False):
    """Step task t's op (already started) until it is done and return its result.  While
    it is blocked every CPU answers its IPIs (flush_all, drains) and, with `quiescent`,
    passes an RCU-sched quiescent state (synchronize_sched)."""
    k = K.mem
    for _ in range(10_000):
        r = step(k, t)
        if r == STEP_DONE:
            return int(k.task[t, S.TASK_RESULT])
        if r == STEP_BLOCKED:
            for c in range(K.nr_cpus):
                handle_ipis(k, c)
                if quiescent:
                    rcu_qs(k, c)
    raise AssertionError("op did not finish")
