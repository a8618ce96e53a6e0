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

Virtual time (`stats == LOCK_STATS_VIRTUAL`, emulator/run/virtual.py): one process steps
one emulated CPU at a time, so the lock word is always free when a phase takes it (a
phase never holds a lock across its end).  Contention is then a matter of virtual time:
the lock row keeps `free_at`, the virtual ns of its last release, and `last_pos`, where
its last holder sits; the run's vclock row (VCLOCK_ROW_FROM_END rows before the table's
end) keeps `now`, the stepped CPU's virtual clock, and the costs of that CPU.  spin_lock
at `now` acquires at max(now, free_at) + the transfer of the lock's line from the last
holder (same CPU, SMT sibling, package, node, or another node at its SLIT distance); it
is a contention when free_at > now, with wait = acquisition - now.  spin_unlock adds the
body of the critical section (a cost per lock class) to `now`; hold = release -
acquisition, and free_at = release.  lock_stat's wait and hold fields are then virtual
ns, and spins/yields stay 0.  Simplification: a phase runs atomically at its CPU's
clock, so a lock taken late in an earlier-started phase is ordered before one taken
early in a later-started phase of another CPU (an error bounded by one phase's cost).
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
    LOCK_FREE_AT,
    LOCK_LAST_POS,
    LOCK_STATS_VIRTUAL,
    VCLOCK_CPU,
    VCLOCK_HOLD_ALIEN,
    VCLOCK_HOLD_LIST_LOCK,
    VCLOCK_HOLD_OTHER,
    VCLOCK_HOLD_SHARED,
    VCLOCK_HOLD_ZONE,
    VCLOCK_NODE_COLUMNS,
    VCLOCK_NOW,
    VCLOCK_POS,
    VCLOCK_WAIT,
    VCLOCK_X_CPU,
    VCLOCK_X_NODE,
    VCLOCK_X_PACKAGE,
    VCLOCK_X_SMT,
    VCLOCK_XFER,
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

# Virtual time: the vclock row is this many rows before the lock table's end (the
# NR_MISC_LOCKS misc locks and the node-cost row follow it; machine.py checks).
VCLOCK_ROW_FROM_END = 4
# vclock column of the critical-section body cost of each lock class (LOCK_CLASS_*)
VCLOCK_HOLD_COLUMN = np.array([VCLOCK_HOLD_ZONE, VCLOCK_HOLD_LIST_LOCK, VCLOCK_HOLD_ALIEN,
                               VCLOCK_HOLD_SHARED, VCLOCK_HOLD_OTHER], np.int64)
NODE_COLUMN = np.array(VCLOCK_NODE_COLUMNS, np.int64)
POS_NODE_SHIFT = 40  # vclock_pos: node << 40 | package << 20 | core
POS_PACKAGE_SHIFT = 20
POS_MASK = (1 << 20) - 1


def vclock_pos(node: int, package: int, core: int) -> int:
    """A CPU's place, packed as the lock rows' last_pos keeps it (node: its index)."""
    return (node << POS_NODE_SHIFT) | (package << POS_PACKAGE_SHIFT) | core


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
    if locks[row, LOCK_STATS] == LOCK_STATS_VIRTUAL:
        if locks[row, LOCK_FREE_AT] > locks[locks.shape[0] - VCLOCK_ROW_FROM_END, VCLOCK_NOW]:
            return False  # held in virtual time
        locks[row, LOCK_WORD] = cpu + 1
        _vt_acquired(locks, row, cpu)
        return True
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
        _contended(locks, row, cpu, now - t0)
        locks[row, LOCK_SPINS] += spins
        locks[row, LOCK_YIELDS] += yields
        _acquired(locks, row, cpu, now)


@njit(cache=True, _nrt=False, inline="always")
def _contended(locks, row, cpu, wait):
    """lock_stat's contention columns for an acquisition that waited `wait` ns (host ns
    in parallel mode, virtual ns in virtual mode); runs before _acquired updates
    last_cpu, so a bounce is a wait for a lock another CPU held last."""
    locks[row, LOCK_CONTENTIONS] += 1
    if locks[row, LOCK_LAST_CPU] != cpu + 1:
        locks[row, LOCK_CON_BOUNCES] += 1
    locks[row, LOCK_WAIT_TOTAL] += wait
    if wait < locks[row, LOCK_WAIT_MIN]:
        locks[row, LOCK_WAIT_MIN] = wait
    if wait > locks[row, LOCK_WAIT_MAX]:
        locks[row, LOCK_WAIT_MAX] = wait


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
            _stats_acquired(locks, row, cpu)
        return
    _spin_lock_contended(locks, row, cpu)


@njit(cache=True, _nrt=False)
def _stats_acquired(locks, row, cpu):
    """lock_stat's side of an uncontended acquisition: host or virtual time (kept out of
    spin_lock, so that the raw lock stays as small as before virtual time)."""
    if locks[row, LOCK_STATS] == LOCK_STATS_VIRTUAL:
        _vt_acquired(locks, row, cpu)
    else:
        _acquired(locks, row, cpu, monotonic_ns())


@njit(cache=True, _nrt=False)
def _vt_transfer(locks, vc, row, cpu):
    """Virtual ns to move the lock's line to `cpu` from the CPU that last wrote it."""
    last = locks[row, LOCK_LAST_CPU] - 1
    if last < 0 or last == cpu:
        return locks[vc, VCLOCK_X_CPU]  # first touch: charged as a local line
    lp = locks[row, LOCK_LAST_POS]
    mp = locks[vc, VCLOCK_POS]
    ln = lp >> POS_NODE_SHIFT
    if ln != (mp >> POS_NODE_SHIFT):
        return locks[vc + 1, NODE_COLUMN[ln]]  # another node, by SLIT distance
    if ((lp >> POS_PACKAGE_SHIFT) & POS_MASK) != ((mp >> POS_PACKAGE_SHIFT) & POS_MASK):
        return locks[vc, VCLOCK_X_NODE]
    if (lp & POS_MASK) == (mp & POS_MASK):
        return locks[vc, VCLOCK_X_SMT]
    return locks[vc, VCLOCK_X_PACKAGE]


@njit(cache=True, _nrt=False)
def _vt_acquired(locks, row, cpu):
    """Virtual time: acquire at max(now, free_at) + the line transfer (module docstring)."""
    vc = locks.shape[0] - VCLOCK_ROW_FROM_END
    now = locks[vc, VCLOCK_NOW]
    free_at = locks[row, LOCK_FREE_AT]
    x = _vt_transfer(locks, vc, row, cpu)
    start = free_at if free_at > now else now
    acq = start + x
    if free_at > now:
        _contended(locks, row, cpu, acq - now)
        locks[vc, VCLOCK_WAIT] += free_at - now
    locks[vc, VCLOCK_XFER] += x
    locks[vc, VCLOCK_NOW] = acq
    locks[row, LOCK_LAST_POS] = locks[vc, VCLOCK_POS]
    _acquired(locks, row, cpu, acq)


@njit(cache=True, _nrt=False)
def _vt_release(locks, row):
    """Virtual time: the critical section's body, then the release at the new `now`."""
    vc = locks.shape[0] - VCLOCK_ROW_FROM_END
    cls = locks[row, LOCK_CLASS]
    body = locks[vc, VCLOCK_HOLD_COLUMN[cls]] if 0 <= cls < VCLOCK_HOLD_COLUMN.shape[0] else 0
    now = locks[vc, VCLOCK_NOW] + body
    locks[vc, VCLOCK_NOW] = now
    locks[row, LOCK_FREE_AT] = now
    return now


@njit(cache=True, _nrt=False)
def spin_unlock(locks, row):
    """spin_unlock(&lock): account the hold time, then a release store of 0."""
    if locks[row, LOCK_STATS] != 0:
        _stats_released(locks, row)
    # release: the critical section, paired with the next holder's cmpxchg (acquire)
    store_release(locks, (row, LOCK_WORD), 0)


@njit(cache=True, _nrt=False)
def _stats_released(locks, row):
    """lock_stat's hold time at a release: host or virtual time."""
    if locks[row, LOCK_STATS] == LOCK_STATS_VIRTUAL:
        now = _vt_release(locks, row)
    else:
        now = monotonic_ns()
    hold = now - locks[row, LOCK_ACQUIRED_AT]
    locks[row, LOCK_HOLD_TOTAL] += hold
    if hold < locks[row, LOCK_HOLD_MIN]:
        locks[row, LOCK_HOLD_MIN] = hold
    if hold > locks[row, LOCK_HOLD_MAX]:
        locks[row, LOCK_HOLD_MAX] = hold


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
    fetch_add(arr, idx, 1)  # seq_cst: releases what this party did before the barrier
    k = 0
    while load_acquire(arr, idx) < n:  # acquire: and sees what the others did
        cpu_relax()
        k += 1
        if k >= SPIN_BEFORE_YIELD:
            sched_yield()
            k = 0
