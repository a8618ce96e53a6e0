"""Atomics under true parallelism: exact counts, a visible race, a lock-free stack."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from numba import njit

from emulator.machine.arena import Arena, LayoutBuilder
from emulator.machine.atomics import (
    cmpxchg,
    cpu_relax,
    fence,
    fetch_add,
    fetch_and,
    fetch_or,
    load_acquire,
    load_relaxed,
    monotonic_ns,
    store_relaxed,
    store_release,
    xchg,
)
from emulator.machine.spinlock import spin_barrier

from ..conftest import needs_two_cpus, run_forked

N = 10_000_000


@njit(cache=True)
def _atomic_adds(arr, n, parties):
    spin_barrier(arr, 1, parties)
    for _ in range(n):
        fetch_add(arr, 0, 1)


@njit(cache=True)
def _racy_adds(arr, n, parties):
    spin_barrier(arr, 1, parties)
    for _ in range(n):
        v = load_relaxed(arr, 0)
        cpu_relax()  # widen the window between the load and the store
        store_relaxed(arr, 0, v + 1)


def _counter_arena():
    b = LayoutBuilder()
    b.add("w", np.int64, 64)
    return Arena.create(b.build())


@pytest.mark.parametrize("procs", [2, 3])
def test_fetch_add_is_exact_across_processes(procs):
    with _counter_arena() as a:
        w = a.t.w
        _atomic_adds(np.zeros(2, np.int64), 1, 1)  # compile in the parent
        run_forked(_atomic_adds, [(w, N, procs)] * procs)
        assert w[0] == procs * N


@needs_two_cpus
def test_separate_load_and_store_loses_updates():
    # Proves the harness can see a race: the same loop without an atomic RMW is wrong.
    with _counter_arena() as a:
        w = a.t.w
        _racy_adds(np.zeros(2, np.int64), 1, 1)
        run_forked(_racy_adds, [(w, N, 2)] * 2)
        assert w[0] < 2 * N


@njit(cache=True)
def _single_ops(a, t):
    out = np.zeros(12, np.int64)
    out[0] = cmpxchg(a, 0, 0, 5)  # succeeds: returns 0
    out[1] = cmpxchg(a, 0, 0, 7)  # fails: returns 5, leaves 5
    out[2] = a[0]
    out[3] = fetch_add(a, 0, 10)  # 5 -> 15
    out[4] = xchg(a, 0, 3)  # 15 -> 3
    out[5] = fetch_or(a, 0, 12)  # 3 -> 15
    out[6] = fetch_and(a, 0, 6)  # 15 -> 6
    store_release(t, (2, 3), 42)
    out[7] = load_acquire(t, (2, 3))
    out[8] = load_relaxed(a, 0)
    fence()
    cpu_relax()
    t0 = monotonic_ns()
    t1 = monotonic_ns()
    out[9] = t1 - t0
    out[10] = t0
    return out


def test_single_process_semantics():
    a = np.zeros(4, np.int64)
    t = np.zeros((3, 5), np.int64)
    out = _single_ops(a, t)
    assert list(out[:9]) == [0, 5, 5, 5, 15, 3, 15, 42, 6]
    assert t[2, 3] == 42 and t.sum() == 42
    # CLOCK_MONOTONIC never goes back (a difference, not a counter: this can fail) and
    # counts from boot, so a reading is positive
    assert out[9] >= 0 and out[10] > 0


def test_machine_code_uses_hardware_atomics():
    uncached = njit(cache=False)(_single_ops.py_func)  # numba cannot inspect cached code
    uncached(np.zeros(4, np.int64), np.zeros((3, 5), np.int64))
    asm = "\n".join(uncached.inspect_asm().values()).lower()
    arch = platform.machine().lower()
    if arch in ("x86_64", "amd64"):
        assert "lock" in asm and "cmpxchg" in asm and "pause" in asm
    elif arch in ("aarch64", "arm64"):
        assert "yield" in asm


def test_wrong_dtype_is_a_typing_error():
    from numba.core.errors import TypingError

    @njit
    def bad(a):
        return fetch_add(a, 0, 1)

    with pytest.raises(TypingError):
        bad(np.zeros(3, np.int32))


# -- a Treiber stack with an ABA tag: head = (tag << 32) | (index + 1) ---------------------
NODES = 64
TAG = 1 << 32


@njit(cache=True)
def _push(head, nxt, i):
    while True:
        h = load_acquire(head, 0)
        nxt[i] = h & (TAG - 1)
        new = ((h >> 32) + 1) * TAG + (i + 1)
        if cmpxchg(head, 0, h, new) == h:
            return


@njit(cache=True)
def _pop(head, nxt):
    while True:
        h = load_acquire(head, 0)
        top = h & (TAG - 1)
        if top == 0:
            return -1
        new = ((h >> 32) + 1) * TAG + nxt[top - 1]
        if cmpxchg(head, 0, h, new) == h:
            return top - 1


@njit(cache=True)
def _stack_churn(head, nxt, owned, rounds, me, parties, bar):
    spin_barrier(bar, 0, parties)
    held = np.empty(8, np.int64)
    for _ in range(rounds):
        k = 0
        for _ in range(8):
            i = _pop(head, nxt)
            if i < 0:
                break
            # exclusive ownership: nobody else may hold this node now
            if cmpxchg(owned, i, -1, me) != -1:
                return 1
            held[k] = i
            k += 1
        for j in range(k):
            store_release(owned, held[j], -1)
            _push(head, nxt, held[j])
    return 0


def _churn_worker(head, nxt, owned, rounds, me, parties, bar):
    if _stack_churn(head, nxt, owned, rounds, me, parties, bar) != 0:
        raise SystemExit(3)


def test_cas_freelist_with_aba_tag_stays_consistent():
    b = LayoutBuilder()
    b.add("head", np.int64, 1)
    b.add("next", np.int64, NODES)
    b.add("owned", np.int64, NODES)
    b.add("bar", np.int64, 1)
    with Arena.create(b.build()) as a:
        head, nxt, owned = a.t.head, a.t.next, a.t.owned
        owned[:] = -1
        for i in range(NODES):
            _push(head, nxt, i)
        _stack_churn(head, nxt, owned, 1, 0, 1, np.zeros(1, np.int64))  # compile
        run_forked(_churn_worker, [(head, nxt, owned, 100_000, me, 2, a.t.bar) for me in range(2)])
        seen = []
        while (i := _pop(head, nxt)) >= 0:
            seen.append(i)
        assert sorted(seen) == list(range(NODES))
        assert (owned == -1).all()
