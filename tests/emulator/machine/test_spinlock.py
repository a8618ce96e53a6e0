"""The shared-memory spinlock: mutual exclusion and lock_stat numbers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from numba import njit

from emulator.machine.arena import Arena, LayoutBuilder
from emulator.machine.atomics import load_relaxed, store_relaxed
from emulator.machine.spinlock import (
    _spin_lock_contended,
    check_lock_stats,
    init_lock,
    lock_holder,
    lock_stat_row,
    spin_barrier,
    spin_is_locked,
    spin_lock,
    spin_trylock,
    spin_unlock,
)
from emulator.machine.structs import (
    LOCK_ACQ_BOUNCES,
    LOCK_CLASS_LIST_LOCK,
    LOCK_CON_BOUNCES,
    LOCK_CONTENTIONS,
    LOCK_HOLD_MAX,
    LOCK_HOLD_MIN,
    LOCK_HOLD_TOTAL,
    LOCK_STATS,
    LOCK_WAIT_MAX,
    LOCK_WAIT_MIN,
    LOCK_WAIT_TOTAL,
    LOCK_WORD,
    STRUCTS,
)

from ..conftest import needs_two_cpus, run_forked

W = STRUCTS["lock"].width(64)


@njit(cache=True)
def _locked_increments(locks, counter, n, cpu, parties):
    spin_barrier(counter, 1, parties)
    for _ in range(n):
        spin_lock(locks, 0, cpu)
        v = load_relaxed(counter, 0)  # a non-atomic increment, protected by the lock
        store_relaxed(counter, 0, v + 1)
        spin_unlock(locks, 0)


def _arena():
    b = LayoutBuilder()
    b.add("locks", np.int64, (2, W))
    b.add("counter", np.int64, 8)
    return Arena.create(b.build())


def _pinned_worker(locks, counter, n, cpu, parties, host_cpu):
    if host_cpu is not None:
        os.sched_setaffinity(0, {host_cpu})
    _locked_increments(locks, counter, n, cpu, parties)


def _run(procs, n, stats=True, pin_all_to=None):
    with _arena() as a:
        init_lock(a.t.locks, 0, LOCK_CLASS_LIST_LOCK, node=0, stats=stats)
        _locked_increments(np.zeros((1, W), np.int64), np.zeros(2, np.int64), 0, 0, 0)
        run_forked(_pinned_worker,
                   [(a.t.locks, a.t.counter, n, cpu, procs, pin_all_to) for cpu in range(procs)])
        return int(a.t.counter[0]), lock_stat_row(a.t.locks, 0), check_lock_stats(a.t.locks, 0)


@needs_two_cpus
def test_lock_keeps_counter_exact_and_stats_consistent():
    n = 200_000
    count, st, bad = _run(2, n)
    assert count == 2 * n
    assert bad == []
    assert st["acquisitions"] == 2 * n
    assert st["contentions"] > 0
    assert 0 < st["con_bounces"] <= st["contentions"]
    assert 0 < st["acq_bounces"] <= st["acquisitions"]
    assert st["waittime_total_us"] > 0 and st["holdtime_total_us"] > 0
    assert st["spins"] > 0


def test_oversubscribed_waiters_yield_and_finish():
    # Three workers on one host CPU: a spinning waiter must yield to the holder.
    n = 20_000
    count, st, bad = _run(3, n, pin_all_to=sorted(os.sched_getaffinity(0))[0])
    assert count == 3 * n and bad == [] and st["acquisitions"] == 3 * n


def test_stats_off_touches_only_the_lock_word():
    count, st, bad = _run(2, 10_000, stats=False)
    assert count == 20_000
    assert st["acquisitions"] == 0 and st["contentions"] == 0 and st["holdtime_total_us"] == 0


@njit(cache=True)
def _sequence(locks):
    out = np.zeros(6, np.int64)
    spin_lock(locks, 0, 3)
    out[0] = lock_holder(locks, 0)
    out[1] = spin_trylock(locks, 0, 4)  # held: fails
    out[2] = spin_is_locked(locks, 0)
    spin_unlock(locks, 0)
    out[3] = spin_trylock(locks, 0, 4)  # free: succeeds (no statistics: trylock)
    spin_unlock(locks, 0)
    spin_lock(locks, 0, 3)
    spin_unlock(locks, 0)
    spin_lock(locks, 0, 3)
    spin_unlock(locks, 0)
    out[4] = lock_holder(locks, 0)
    return out


def test_single_cpu_sequence_counts_bounces_exactly():
    locks = np.zeros((1, W), np.int64)
    init_lock(locks, 0, LOCK_CLASS_LIST_LOCK)
    out = _sequence(locks)
    assert list(out[:5]) == [3, 0, 1, 1, -1]
    st = lock_stat_row(locks, 0)
    # three spin_lock calls by cpu 3: the first bounces (no previous holder), then local
    assert st["acquisitions"] == 3 and st["acq_bounces"] == 1 and st["contentions"] == 0
    assert check_lock_stats(locks, 0) == []


# -- check_lock_stats can fail: each invariant broken once in a real row ----------------
@njit(cache=True)
def _contended_sequence(locks):
    """Three acquisitions, the last two through the contended path: CPU 3 takes and drops
    the lock, then CPU 5 twice finds its first try failed (entered as spin_lock does
    after a failed cmpxchg) and takes the lock once it is free."""
    spin_lock(locks, 0, 3)
    spin_unlock(locks, 0)
    _spin_lock_contended(locks, 0, 5)
    spin_unlock(locks, 0)
    _spin_lock_contended(locks, 0, 5)
    spin_unlock(locks, 0)


def _real_row():
    locks = np.zeros((1, W), np.int64)
    init_lock(locks, 0, LOCK_CLASS_LIST_LOCK)
    _contended_sequence(locks)
    st = lock_stat_row(locks, 0)
    assert (st["acquisitions"], st["contentions"], st["con_bounces"], st["acq_bounces"]) == (3, 2, 1, 2)
    assert check_lock_stats(locks, 0) == []
    return locks


@pytest.mark.parametrize("field,value,message", [
    (LOCK_WORD, 6, "lock is held at a quiescent point"),
    (LOCK_CONTENTIONS, 4, "contentions 4 > acquisitions 3"),
    (LOCK_CON_BOUNCES, 3, "con_bounces > contentions"),
    (LOCK_ACQ_BOUNCES, 4, "acq_bounces > acquisitions"),
    (LOCK_WAIT_MIN, "max+1", "wait time min <= max <= total violated"),
    (LOCK_WAIT_TOTAL, "max-1", "wait time min <= max <= total violated"),
    (LOCK_HOLD_MIN, "max+1", "hold time min <= max <= total violated"),
    (LOCK_HOLD_TOTAL, "max-1", "hold time min <= max <= total violated"),
])
def test_check_lock_stats_reports_each_invariant(field, value, message):
    locks = _real_row()
    if isinstance(value, str):  # relative to the row's own max
        mx = locks[0, LOCK_WAIT_MAX if field in (LOCK_WAIT_MIN, LOCK_WAIT_TOTAL) else LOCK_HOLD_MAX]
        value = mx + 1 if value == "max+1" else mx - 1
    locks[0, field] = value
    assert check_lock_stats(locks, 0) == [message]


def test_check_lock_stats_ignores_the_times_of_a_raw_lock():
    locks = _real_row()
    locks[0, LOCK_HOLD_MIN] = locks[0, LOCK_HOLD_MAX] + 1
    assert check_lock_stats(locks, 0) == ["hold time min <= max <= total violated"]
    locks[0, LOCK_STATS] = 0  # stats off: times are not kept, so not checked
    assert check_lock_stats(locks, 0) == []
