"""`slabemu replay --trace`: a reproducer's interleaving as a timeline, one column per CPU.

Each row is one step that made progress: the step number, then, in the column of the CPU
stepped, the kernel function and phase that ran (ops.py's phase table names), the
kworker's marked "kw:" ("preempted -> kw:" where the bounded search preempted the
task), an op that started and finished in one step (a fast path) marked
"(fast)", IPIs taken marked "ipi".  Steps at which the chosen CPU could not run are left
out.  The last row is the bad access, followed by the KASAN report's first line.
"""

from __future__ import annotations

import numpy as np

from ..kernel.ops import OP_NAMES, OP_NONE, phase_name
from ..machine import structs as S
from .explore import Machine
from .strategies import Strategy

WIDTH = 50


def _task_state(k, c, tpc):
    cur = int(k.cpu[c, S.CPU_CURRENT])
    t = c * tpc + cur
    return (cur, int(k.task[t, S.TASK_OP]), int(k.task[t, S.TASK_PHASE]),
            int(k.task[t, S.TASK_OPS_STARTED]), int(k.wl[c, S.WORKLOAD_STEPS]),
            int(k.cpu[c, S.CPU_IPIS_HANDLED]), int(k.kasan_report[0, 0]))


def _text(before, after) -> str:
    cur, op, ph, started, steps, ipis, _ = before
    cur2, op2, ph2, started2, steps2, ipis2, _ = after
    kw = "kw:" if cur else ""
    if op != OP_NONE:
        return kw + phase_name(op, ph)  # the phase table names the kernel function
    if op2 != OP_NONE and cur2 == cur:
        return kw + f"{OP_NAMES[op2]} starts"
    if ipis2 != ipis:
        return "ipi"
    if cur2 != cur:
        return "switch to kworker" if cur2 else "back to task"
    return ""


def trace_schedule(sc, schedule) -> list[str]:
    """The timeline of `schedule` replayed on the scenario (deterministic mode)."""
    schedule = np.asarray(schedule, np.int64)
    rows = []
    with Machine(sc) as m:
        k = m.K.mem
        tpc = int(k.config[S.CONFIG_NR_TASKS_PER_CPU])
        n = m.nr_cpus
        state = {}

        def hook(pos, k, before):
            if pos >= len(schedule):
                return
            code = int(schedule[pos])
            c = int(m.cpus[code % n])
            if before:
                state["b"] = _task_state(k, c, tpc)
                return
            b, a = state["b"], _task_state(k, c, tpc)
            if a[1:6] == b[1:6] and a[0] == b[0]:
                return  # no progress
            text = _text(b, a)
            if code >= n and a[0] == 1 and b[0] == 0:  # the search preempted the task here
                text = "preempted -> kw:" + (phase_name(a[1], a[2]) if a[1] else "")
            if b[1] == OP_NONE and a[1] == OP_NONE and a[3] != b[3]:
                # started and finished inside the step: name the op from the task's record
                last = int(k.task[c * tpc + a[0], S.TASK_PREV_OP])
                text = ("kw:" if a[0] else "") + (f"{OP_NAMES[last]} (fast)" if 0 < last < len(OP_NAMES)
                                                  else "op (fast)")
            rows.append((pos, c, text, a[6] > b[6]))

        o = m.run(Strategy("replay", replay=schedule), step_hook=hook)
        names = [f"cpu {cid}" for cid in m.K.cpu_ids]
    head = f"{'step':>6}  " + "".join(f"{nm:<{WIDTH}}" for nm in names)
    lines = [head, "-" * len(head.rstrip())]
    for pos, c, text, bad in rows:
        cols = [""] * n
        cols[c] = (text[:WIDTH - 2] + ("  <-- BAD ACCESS" if bad else ""))
        lines.append((f"{pos:>6}  " + "".join(f"{x:<{WIDTH}}" for x in cols)).rstrip())
    if o.kasan:
        r = o.kasan[0]
        lines.append(f"BUG: KASAN: {r['bug']} in {r['op']}/{r['phase']}")
    return lines
