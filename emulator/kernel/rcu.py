"""RCU-sched across worker processes: quiescent states, grace periods, call_rcu_sched.

What it models: the rcu_sched flavour of Linux 3.16 (non-preemptible kernel sections are
read-side critical sections).  A CPU passes a quiescent state (rcu_qs) where the kernel
would report one: between two ops of its workload task (the return to user mode), at a
context switch (the workload task preempted, or a task blocking), and when idle.  A task
inside an op — preemption enabled or not — is in a read-side section until it passes one
of those points: that is why patch 6 (a grace period before destroy) protects slab_free
only together with patch 5 (no preemption point, so no context switch, inside it).

Grace periods (rcu row 0): gp_started, gp_completed, gp_requested.  A GP is started only
when none is in progress (completed == started) and one is requested; it completes when
every CPU's rcu_gp_seen has reached it, each CPU copying gp_started into its rcu_gp_seen
at its next quiescent state.  Both transitions are CASes, so any CPU may make them.
call_rcu_sched queues a callback on the calling CPU for the GP after the current one;
the CPU runs it at a quiescent state once that GP has completed.  synchronize_sched is
rcu_sync_start + waiting (blocked, itself a quiescent state) for rcu_sync_done.

Invariants: gp_completed <= gp_started <= gp_completed + 1; a callback queued while GP g
was the last started runs only after GP g + 1 completed; rcu_cbs[cpu] == the callbacks
queued on cpu and not yet run.
"""

from __future__ import annotations

from numba import njit

from ..machine import structs as S
from ..machine.atomics import cmpxchg, load_acquire, store_release
from .workqueue import WORK_CACHE_DESTROY, schedule_work

RCU_CB_DESTROY = 1  # memcg_unregister_cache_rcu_func: schedule the unregister work
CHECK_EVERY = 16  # quiescent states between two looks at every CPU's rcu_gp_seen


@njit(cache=True)
def rcu_request_gp(k):
    """The grace period a caller must wait for (one that starts after now); requested."""
    # grace-period words: written by cmpxchg (seq_cst), read with load_acquire everywhere
    target = load_acquire(k.rcu, (0, S.RCU_GP_STARTED)) + 1
    while True:
        req = load_acquire(k.rcu, (0, S.RCU_GP_REQUESTED))
        if req >= target or cmpxchg(k.rcu, (0, S.RCU_GP_REQUESTED), req, target) == req:
            return target


@njit(cache=True)
def rcu_gp_advance(k):
    """Complete the current grace period if every CPU has reported it, and start the
    next requested one.  Any CPU may call this."""
    started = load_acquire(k.rcu, (0, S.RCU_GP_STARTED))
    completed = load_acquire(k.rcu, (0, S.RCU_GP_COMPLETED))
    if completed < started:
        for c in range(k.machine[0, S.MACHINE_NR_CPUS]):
            # acquire, paired with rcu_qs's store_release: c's read-side accesses are done
            if load_acquire(k.cpu, (c, S.CPU_RCU_GP_SEEN)) < started:
                return
        # seq_cst: passes on what the acquires above saw, paired with the waiters'
        # load_acquire of gp_completed (rcu_do_callbacks, rcu_sync_done)
        cmpxchg(k.rcu, (0, S.RCU_GP_COMPLETED), completed, started)
        completed = started
    if completed == started and load_acquire(k.rcu, (0, S.RCU_GP_REQUESTED)) > started:
        cmpxchg(k.rcu, (0, S.RCU_GP_STARTED), started, started + 1)


@njit(cache=True, _nrt=False)  # per op: no reference counting (kernel/fastpath.py)
def rcu_qs(k, cpu):
    """A quiescent state of `cpu`: report it for the current grace period, push grace
    periods along, and run this CPU's callbacks whose grace period has completed."""
    n = k.cpu[cpu, S.CPU_RCU_QS] + 1
    k.cpu[cpu, S.CPU_RCU_QS] = n
    started = load_acquire(k.rcu, (0, S.RCU_GP_STARTED))
    fresh = k.cpu[cpu, S.CPU_RCU_GP_SEEN] < started
    if fresh:
        # release: this CPU's accesses before the quiescent state, paired with
        # rcu_gp_advance's load_acquire of rcu_gp_seen
        store_release(k.cpu, (cpu, S.CPU_RCU_GP_SEEN), started)
    if fresh or n % CHECK_EVERY == 0 or load_acquire(k.rcu, (0, S.RCU_GP_REQUESTED)) > started:
        rcu_gp_advance(k)
    if k.cpu[cpu, S.CPU_RCU_CBS] > 0:
        rcu_do_callbacks(k, cpu)


@njit(cache=True)
def call_rcu_sched(k, cpu, kind, arg, gen):
    """call_rcu_sched(): run callback `kind`(arg, gen) on this CPU after a grace period.
    False if this CPU's callback list is full."""
    n = k.cpu[cpu, S.CPU_RCU_CBS]
    if n >= k.rcu_cb.shape[1]:
        return False
    target = rcu_request_gp(k)
    k.rcu_cb[cpu, n, 0] = target
    k.rcu_cb[cpu, n, 1] = kind
    k.rcu_cb[cpu, n, 2] = arg
    k.rcu_cb[cpu, n, 3] = gen
    k.cpu[cpu, S.CPU_RCU_CBS] = n + 1
    return True


@njit(cache=True)
def rcu_do_callbacks(k, cpu):
    """rcu_do_batch(): run (in queue order) the callbacks whose grace period completed."""
    completed = load_acquire(k.rcu, (0, S.RCU_GP_COMPLETED))
    n = k.cpu[cpu, S.CPU_RCU_CBS]
    keep = 0
    for i in range(n):
        if k.rcu_cb[cpu, i, 0] <= completed:
            if k.rcu_cb[cpu, i, 1] == RCU_CB_DESTROY:
                schedule_work(k, cpu, WORK_CACHE_DESTROY, k.rcu_cb[cpu, i, 2], 0, k.rcu_cb[cpu, i, 3])
        else:
            for j in range(4):
                k.rcu_cb[cpu, keep, j] = k.rcu_cb[cpu, i, j]
            keep += 1
    k.cpu[cpu, S.CPU_RCU_CBS] = keep


@njit(cache=True)
def rcu_sync_done(k, target):
    """synchronize_sched()'s wait: has grace period `target` completed?"""
    rcu_gp_advance(k)
    return load_acquire(k.rcu, (0, S.RCU_GP_COMPLETED)) >= target
