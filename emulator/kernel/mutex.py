"""Sleeping mutexes: slab_mutex (mm/slab_common.c) and memcg_slab_mutex (mm/memcontrol.c).

What it models: a struct mutex that a task may hold across phases (a phase boundary is
where the kernel may sleep or be preempted; a spin lock is never held across one).  The
owner word (in the rcu row: RCU_SLAB_MUTEX_OWNER, RCU_MEMCG_SLAB_MUTEX_OWNER) is the
owning task + 1, 0 when free.  mutex_trylock is one CAS; a task that finds the mutex
held sleeps: its op returns STEP_BLOCKED and retries the same phase later (ops.py,
`_mutex_lock`, which also reports the sleep as an RCU-sched quiescent state, a context
switch).  A task that already owns the mutex gets it again (the phase that took it may
run again after a later sleep); it is not a recursive mutex in any other sense.

Who takes which, as 3.16 with the series (v2) does:
  memcg_slab_mutex  memcg offline (memcg_unregister_all_caches, the whole op), the
                    creation work (memcg_create_cache_work_func), the unregister work
                    (memcg_unregister_cache_func, patch 2);
  slab_mutex        cache_reap (mutex_trylock: a held mutex skips the pass), the
                    creation (kmem_cache_create_memcg), kmem_cache_destroy.
Lock order: memcg_slab_mutex before slab_mutex.  No waiter queue: whoever's CAS comes
first after the unlock gets it (the kernel's optimistic spinning does much the same).
Invariant: an owner word is 0 or names a task with an op in flight.
"""

from __future__ import annotations

from numba import njit

from ..machine import structs as S
from ..machine.atomics import cmpxchg, load_relaxed, store_release


@njit(cache=True, inline="always")
def mutex_trylock(k, which, t):
    """mutex_trylock(): True if task t owns mutex `which` now (or already did)."""
    cur = load_relaxed(k.rcu, (0, which))
    if cur == t + 1:
        return True
    # acquire: the seq_cst CAS pairs with mutex_unlock's store_release, so what the last
    # owner wrote under the mutex is visible to the new one
    return cur == 0 and cmpxchg(k.rcu, (0, which), 0, t + 1) == 0


@njit(cache=True, inline="always")
def mutex_owned(k, which, t):
    return load_relaxed(k.rcu, (0, which)) == t + 1


@njit(cache=True, inline="always")
def mutex_unlock(k, which, t):
    """mutex_unlock() by its owner (a no-op for a task that does not own it)."""
    if load_relaxed(k.rcu, (0, which)) == t + 1:
        # release: pairs with mutex_trylock's CAS in the next owner
        store_release(k.rcu, (0, which), 0)
