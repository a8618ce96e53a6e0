"""Per-CPU workqueues: schedule_work() queues on the local CPU, its kworker runs the items.

What it models: the system workqueue's per-CPU pools as the series uses them —
memcg_create_cache_work_func (creating a memcg's child cache on first use; its message
carries the machine clock at queueing, for the creation latency), the unregister work
that destroys a dead cache, and SLAB's per-CPU cache_reap delayed work once its timer
expired (kernel/ops.py reap_timer).  Each CPU's queue is its RING_WORK inbox
(emulator/machine/inbox.py); the CPU's second task, its kworker, runs the items between
the workload task's ops, or when it preempts the workload task at a preemption point
(emulator/run/loop.py).

Invariants: an item is queued on the CPU that calls schedule_work and run by that CPU's
kworker only, in queue order; a work message is [kind, arg, arg2, gen].
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..machine.inbox import inbox_pending, inbox_recv, inbox_send
from ..machine.machine import NR_RINGS, RING_WORK

WORK_CACHE_CREATE = 1  # memcg_create_cache_work_func: arg root cache, arg2 memcg
WORK_CACHE_DESTROY = 2  # the unregister work: arg the cache, gen its generation
WORK_CACHE_REAP = 3  # SLAB's slab_reap_work (mm/slab.c cache_reap), queued by the CPU's timer


@njit(cache=True, _nrt=True)  # allocates: NRT even when called from NRT-free code
def schedule_work(k, cpu, kind, arg, arg2, gen):
    """schedule_work(): queue on this CPU.  False if its queue is full (counted there)."""
    msg = np.empty(4, np.int64)
    msg[0] = kind
    msg[1] = arg
    msg[2] = arg2
    msg[3] = gen
    return inbox_send(k.inbox, k.slots, cpu * NR_RINGS + RING_WORK, msg)


@njit(cache=True, inline="always")
def work_pending(k, cpu):
    return inbox_pending(k.inbox, cpu * NR_RINGS + RING_WORK) > 0


@njit(cache=True, _nrt=False)  # per op: no reference counting (kernel/fastpath.py)
def work_dequeue(k, cpu, msg):
    """The kworker takes its CPU's next item into msg; False if there is none."""
    return inbox_recv(k.inbox, k.slots, cpu * NR_RINGS + RING_WORK, msg)
