"""Spinlocks in shared memory with /proc/lock_stat's statistics.

What it models: the kernel's spinlock_t (list_lock, zone->lock, alien locks) as a
test-and-test-and-set lock over one int64 word, and CONFIG_LOCK_STAT's per-class
counters as kernel/locking/lockdep.c keeps them:
  - `acquisitions`: every acquisition (lock_release's holdtime count);
  - `contentions`: acquisitions whose first try failed (__lock_contended);
  - `con_bounces`: contentions where the lock was last taken by another CPU;
  - `acq_bounces`: acquisitions where the lock was last taken by another CPU
    (__lock_acquired: `if (lock->cpu != cpu) bounces++; lock->cpu = cpu`);
  - wait time min/max/total: for contended acquisitions only, from the first failed try
    to the acquisition; hold time min/max/total: for every acquisition, to the release;
  - `spins` and `yields`: busy-wait iterations and sched_yield calls while contended.
    Unlike times they are deterministic under the deterministic scheduler.

Locking: a lock row is one cache-line-padded row of the `lock` table (structs.LOCK_*).
The word is 0 when free and holder-cpu + 1 when held.  Every statistics field is written
only by the holder, between its acquire (cmpxchg, sequentially consistent) and its release
(a release store), so statistics need no atomics of their own.

Invariants (checked by `check_lock_stats`):
  contentions <= acquisitions;  con_bounces <= contentions;  acq_bounces <= acquisitions;
  wait_total >= wait_max >= wait_min when contentions > 0; likewise hold.

The lock functions are compiled without numba's reference counting (`_nrt=False`:
they allocate nothing), which otherwise costs an atomic incref/decref pair on the lock
table per call, more than the uncontended lock itself.

Spinning: after SPIN_BEFORE_YIELD relaxed loads with cpu_relax() the waiter calls
sched_yield(), so that oversubscribed workers sharing a host CPU make progress.
With `stats == 0` in the row only the lock word is touched: the raw lock for benchmarks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .atomics import (
    cmpxchg,
    cpu_relax,
    fetch_add,
    load_acquire,
    load_relaxed,
    monotonic_ns,
    sched_yield,
    store_release,
)
from .structs import (
    INT64_MAX,
    LOCK_ACQ_BOUNCES,
    LOCK_ACQUIRED_AT,
    LOCK_ACQUISITIONS,
    LOCK_CLASS,
    LOCK_CON_BOUNCES,
    LOCK_CONTENTIONS,
    LOCK_HOLD_MAX,
    LOCK_HOLD_MIN,
    LOCK_HOLD_TOTAL,
    LOCK_LAST_CPU,
    LOCK_NODE,
    LOCK_OWNER_OBJ,
    LOCK_SPINS,
    LOCK_STATS,
    LOCK_WAIT_MAX,
    LOCK_WAIT_MIN,
    LOCK_WAIT_TOTAL,
    LOCK_WORD,
    LOCK_YIELDS,
)

SPIN_BEFORE_YIELD = 1024


def init_lock(locks: np.ndarray, row: int, lock_class: int, node: int = -1,
              owner_obj: int = -1, stats: bool = True) -> None:
    """spin_lock_init(): set up one lock row (from Python, before workers start)."""
    locks[row, :] = 0
    locks[row, LOCK_WAIT_MIN] = INT64_MAX
    locks[row, LOCK_HOLD_MIN] = INT64_MAX
    locks[row, LOCK_STATS] = 1 if stats else 0
    locks[row, LOCK_CLASS] = lock_class
    locks[row, LOCK_NODE] = node
    locks[row, LOCK_OWNER_OBJ] = owner_obj


@njit(cache=True, _nrt=False)
def spin_trylock(locks, row, cpu):
    """spin_trylock(): one attempt; no statistics (the caller is not waiting)."""
    if load_relaxed(locks, (row, LOCK_WORD)) != 0:
        return False
    return cmpxchg(locks, (row, LOCK_WORD), 0, cpu + 1) == 0


@njit(cache=True, _nrt=False)
def _spin_lock_contended(locks, row, cpu):
    """The slow path: spin on relaxed loads, yield after a bounded spin, retry the CAS."""
    stats = locks[row, LOCK_STATS] != 0
    t0 = monotonic_ns() if stats else 0
    spins = 0
    yields = 0
    while True:
        n = 0
        while load_relaxed(locks, (row, LOCK_WORD)) != 0:
            cpu_relax()
            n += 1
            if n >= SPIN_BEFORE_YIELD:
                sched_yield()
                yields += 1
                n = 0
            spins += 1
        if cmpxchg(locks, (row, LOCK_WORD), 0, cpu + 1) == 0:
            break
    if stats:
        now = monotonic_ns()
        wait = now - t0
        locks[row, LOCK_CONTENTIONS] += 1
        if locks[row, LOCK_LAST_CPU] != cpu + 1:
            locks[row, LOCK_CON_BOUNCES] += 1
        locks[row, LOCK_WAIT_TOTAL] += wait
        if wait < locks[row, LOCK_WAIT_MIN]:
            locks[row, LOCK_WAIT_MIN] = wait
        if wait > locks[row, LOCK_WAIT_MAX]:
            locks[row, LOCK_WAIT_MAX] = wait
        locks[row, LOCK_SPINS] += spins
        locks[row, LOCK_YIELDS] += yields
        _acquired(locks, row, cpu, now)


@njit(cache=True, _nrt=False)
def _acquired(locks, row, cpu, now):
    locks[row, LOCK_ACQUISITIONS] += 1
    if locks[row, LOCK_LAST_CPU] != cpu + 1:
        locks[row, LOCK_ACQ_BOUNCES] += 1
    locks[row, LOCK_LAST_CPU] = cpu + 1
    locks[row, LOCK_ACQUIRED_AT] = now


@njit(cache=True, _nrt=False)
def spin_lock(locks, row, cpu):
    """spin_lock(&lock) by emulated CPU `cpu`."""
    if cmpxchg(locks, (row, LOCK_WORD), 0, cpu + 1) == 0:
        if locks[row, LOCK_STATS] != 0:
            _acquired(locks, row, cpu, monotonic_ns())
        return
    _spin_lock_contended(locks, row, cpu)


@njit(cache=True, _nrt=False)
def spin_unlock(locks, row):
    """spin_unlock(&lock): account the hold time, then a release store of 0."""
    if locks[row, LOCK_STATS] != 0:
        hold = monotonic_ns() - locks[row, LOCK_ACQUIRED_AT]
        locks[row, LOCK_HOLD_TOTAL] += hold
        if hold < locks[row, LOCK_HOLD_MIN]:
            locks[row, LOCK_HOLD_MIN] = hold
        if hold > locks[row, LOCK_HOLD_MAX]:
            locks[row, LOCK_HOLD_MAX] = hold
    store_release(locks, (row, LOCK_WORD), 0)


@njit(cache=True, _nrt=False)
def spin_is_locked(locks, row):
    return load_relaxed(locks, (row, LOCK_WORD)) != 0


@njit(cache=True, _nrt=False)
def lock_holder(locks, row):
    """The emulated CPU holding the lock, or -1 (lockdep_assert_held)."""
    return load_relaxed(locks, (row, LOCK_WORD)) - 1


def lock_stat_row(locks: np.ndarray, row: int) -> dict:
    """One lock's statistics as lock_stat reports them (times in microseconds)."""
    r = locks[row]
    cont = int(r[LOCK_CONTENTIONS])
    acq = int(r[LOCK_ACQUISITIONS])

    def us(v):
        return round(int(v) / 1000.0, 2)

    return {
        "acquisitions": acq,
        "contentions": cont,
        "con_bounces": int(r[LOCK_CON_BOUNCES]),
        "acq_bounces": int(r[LOCK_ACQ_BOUNCES]),
        "waittime_min_us": us(r[LOCK_WAIT_MIN]) if cont else 0.0,
        "waittime_max_us": us(r[LOCK_WAIT_MAX]),
        "waittime_total_us": us(r[LOCK_WAIT_TOTAL]),
        "holdtime_min_us": us(r[LOCK_HOLD_MIN]) if acq else 0.0,
        "holdtime_max_us": us(r[LOCK_HOLD_MAX]),
        "holdtime_total_us": us(r[LOCK_HOLD_TOTAL]),
        "spins": int(r[LOCK_SPINS]),
        "yields": int(r[LOCK_YIELDS]),
        "node": int(r[LOCK_NODE]),
    }


def check_lock_stats(locks: np.ndarray, row: int) -> list[str]:
    """The invariants of the module docstring; returns the violated ones."""
    r = locks[row]
    bad = []
    acq, cont = int(r[LOCK_ACQUISITIONS]), int(r[LOCK_CONTENTIONS])
    if r[LOCK_WORD] != 0:
        bad.append("lock is held at a quiescent point")
    if cont > acq:
        bad.append(f"contentions {cont} > acquisitions {acq}")
    if r[LOCK_CON_BOUNCES] > cont:
        bad.append("con_bounces > contentions")
    if r[LOCK_ACQ_BOUNCES] > acq:
        bad.append("acq_bounces > acquisitions")
    if r[LOCK_STATS] and cont and not (r[LOCK_WAIT_MIN] <= r[LOCK_WAIT_MAX] <= r[LOCK_WAIT_TOTAL]):
        bad.append("wait time min <= max <= total violated")
    if r[LOCK_STATS] and acq and not (r[LOCK_HOLD_MIN] <= r[LOCK_HOLD_MAX] <= r[LOCK_HOLD_TOTAL]):
        bad.append("hold time min <= max <= total violated")
    return bad


@njit(cache=True)
def spin_barrier(arr, idx, n):
    """Arrive at a counting barrier word and wait until n parties have arrived.

    The word is used once (it is never reset): give each barrier its own word.
    """
    fetch_add(arr, idx, 1)
    k = 0
    while load_acquire(arr, idx) < n:
        cpu_relax()
        k += 1
        if k >= SPIN_BEFORE_YIELD:
            sched_yield()
            k = 0
