"""Litmus tests of the project's own primitives, across processes, many iterations each.

Each test runs a classic memory-model shape through the primitives the model uses
(emulator/machine/atomics.py, inbox.py, spinlock.py) in forked processes sharing an
arena, for a bounded number of rounds and a bounded time (a few seconds), and counts
the outcomes the pattern forbids:

  MP   message passing: a payload then a store_release of a flag / an inbox slot's seq;
       the reader's load_acquire of the flag then its plain loads of the payload.
       Forbidden: flag seen, payload stale.  Without the release/acquire pair arm64
       allows it (x86_64's TSO does not).
  SB   store buffering on the control words: each side writes its word with a seq_cst
       RMW (fetch_add/xchg, as loop.py and runner.py do for ctl.done and ctl.paused),
       or a store followed by fence(), then reads the other's with load_acquire.
       Forbidden: both read 0.  With a plain or release store and no fence, x86_64 and
       arm64 both allow it: `test_sb_without_a_barrier_is_allowed` runs that shape too
       and reports how often it was seen (the harness can see a reordering).
  MUTEX  spin_lock/spin_unlock around a two-word plain read-modify-write: the words must
       stay equal and count every critical section.
  ABA  a Treiber stack whose head word carries a tag (as SLUB's freelist+counters word
       is swapped whole by cmpxchg_double_slab): nodes carry a payload written before
       the push and an owner word; a pop must see the payload and must be the node's
       only owner.

qemu on an x86_64 host keeps the host's strong ordering, so under tools/arm64/check
these prove the code runs, not that its barriers suffice; docs/arm64.md says how to run
them natively on an arm64 machine (where a missing barrier shows), with more rounds
(SLABEMU_LITMUS_ROUNDS, SLABEMU_LITMUS_SECONDS).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from numba import njit

from emulator.machine.arena import Arena, LayoutBuilder
from emulator.machine.atomics import (
    cmpxchg,
    cpu_relax,
    fence,
    fetch_add,
    load_acquire,
    load_relaxed,
    monotonic_ns,
    sched_yield,
    store_relaxed,
    store_release,
    xchg,
)
from emulator.machine.inbox import inbox_recv, inbox_send, init_inboxes
from emulator.machine.spinlock import init_lock, spin_lock, spin_unlock
from emulator.machine.structs import INBOX_NR_FIELDS, LOCK_NR_FIELDS, LOCK_WORD

from ..conftest import needs_two_cpus, run_forked

ROUNDS = int(os.environ.get("SLABEMU_LITMUS_ROUNDS", "100000"))
SECONDS = float(os.environ.get("SLABEMU_LITMUS_SECONDS", "2"))
NS = int(SECONDS * 1e9)

# control words of the round harness (in `ctl`)
C_PROGRESS = 0  # [0, 1]: rounds each side has started (per side, 8 words apart)
C_STOP = 16  # set by whoever ran out of time: the other stops at the same round
C_DONE = 24  # MP: rounds the reader ran


def _arena(**tables):
    b = LayoutBuilder()
    b.add("ctl", np.int64, 64)
    for name, shape in tables.items():
        b.add(name, np.int64, shape)
    return Arena.create(b.build())


@njit(cache=True)
def _meet(ctl, me, r, deadline):
    """Both sides start round r together (or stop: returns False)."""
    store_release(ctl, C_PROGRESS + 8 * me, r + 1)
    other = C_PROGRESS + 8 * (1 - me)
    n = 0
    while load_acquire(ctl, other) < r + 1:
        if load_relaxed(ctl, C_STOP) != 0:
            return False
        n += 1
        if n % 256 == 0:
            if monotonic_ns() > deadline:
                store_relaxed(ctl, C_STOP, 1)
                return False
            sched_yield()
        else:
            cpu_relax()
    return True


# -- MP: message passing through release/acquire ----------------------------------------
@njit(cache=True)
def _mp(ctl, data, flag, res, me, rounds, deadline):
    for r in range(rounds):
        if not _meet(ctl, me, r, deadline):
            return
        if me == 0:  # writer: the payload, then the flag (release)
            data[r, 0] = 3 * r + 1
            data[r, 1] = 5 * r + 2
            store_release(flag, r, 1)
        else:  # reader: the flag (acquire), then the payload, at once
            f = load_acquire(flag, r)
            a = data[r, 0]
            b = data[r, 1]
            res[r, 0] = f
            res[r, 1] = 1 if (f == 1 and (a != 3 * r + 1 or b != 5 * r + 2)) else 0
        if me == 1:
            fetch_add(ctl, C_DONE, 1)


@needs_two_cpus
def test_mp_release_acquire():
    with _arena(data=(ROUNDS, 2), flag=ROUNDS, res=(ROUNDS, 2)) as a:
        t = a.t
        _warm(_mp, t, (t.data, t.flag, t.res))
        deadline = time.monotonic_ns() + NS  # CLOCK_MONOTONIC, as monotonic_ns()
        run_forked(_mp, [(t.ctl, t.data, t.flag, t.res, me, ROUNDS, deadline) for me in (0, 1)])
        done = int(t.ctl[C_DONE])
        assert done > 0
        assert int(t.res[:done, 1].sum()) == 0, "flag seen with a stale payload"
        print(f"MP: {done} rounds, flag seen in {int(t.res[:done, 0].sum())}")


# -- MP through an inbox ring --------------------------------------------------------------
MSGS = 200_000


@njit(cache=True)
def _producer(inbox, slots, me, n, deadline):
    msg = np.zeros(3, np.int64)
    for i in range(n):
        msg[0] = me
        msg[1] = i
        msg[2] = (i * 2654435761 + me) & 0xFFFFFFFF
        k = 0
        while not inbox_send(inbox, slots, 0, msg):
            k += 1
            if k % 64 == 0:
                if monotonic_ns() > deadline:
                    return i
                sched_yield()
    return n


@njit(cache=True)
def _consumer(inbox, slots, res, producers, n, deadline):
    out = np.zeros(3, np.int64)
    nxt = np.zeros(producers, np.int64)
    got = 0
    bad = 0
    idle = 0
    while got < producers * n:
        if inbox_recv(inbox, slots, 0, out):
            p, i, check = out[0], out[1], out[2]
            if p < 0 or p >= producers or i != nxt[p] or check != ((i * 2654435761 + p) & 0xFFFFFFFF):
                bad += 1
            else:
                nxt[p] = i + 1
            got += 1
            idle = 0
        else:
            idle += 1
            if idle % 64 == 0:
                if monotonic_ns() > deadline:
                    break
                sched_yield()
    res[0] = got
    res[1] = bad


def _inbox_child(inbox, slots, res, who, producers, n, deadline):
    if who < 0:
        _consumer(inbox, slots, res, producers, n, deadline)
    else:
        _producer(inbox, slots, who, n, deadline)


@needs_two_cpus
def test_mp_through_an_inbox():
    producers = 2
    with _arena(inbox=(1, 2, INBOX_NR_FIELDS), slots=(1, 16, 4), res=4) as a:
        t = a.t
        init_inboxes(t.inbox, t.slots)
        deadline = time.monotonic_ns() + NS  # CLOCK_MONOTONIC, as monotonic_ns()
        _inbox_child(t.inbox, t.slots, t.res, 0, 1, 1, deadline)  # compile; one message
        _inbox_child(t.inbox, t.slots, t.res, -1, 1, 1, deadline)
        assert t.res[0] == 1 and t.res[1] == 0
        init_inboxes(t.inbox, t.slots)
        t.res[:] = 0
        deadline = time.monotonic_ns() + NS  # CLOCK_MONOTONIC, as monotonic_ns()
        run_forked(_inbox_child, [(t.inbox, t.slots, t.res, w, producers, MSGS, deadline)
                                  for w in (-1, 0, 1)])
        got, bad = int(t.res[0]), int(t.res[1])
        assert got > 0
        assert bad == 0, f"{bad} of {got} messages torn, lost or out of order"
        print(f"inbox MP: {got} messages from {producers} producers")


# -- SB: store buffering on control words ---------------------------------------------------
SB_RMW, SB_FENCE, SB_PLAIN = 0, 1, 2


@njit(cache=True)
def _sb(ctl, x, res, me, rounds, deadline, kind):
    mine = me
    theirs = 1 - me
    for r in range(rounds):
        if not _meet(ctl, me, r, deadline):
            return
        if kind == SB_RMW:  # as ctl.done / ctl.paused: a seq_cst RMW, then a load
            fetch_add(x, (r, mine), 1)
        elif kind == SB_FENCE:  # a store, smp_mb(), a load
            store_relaxed(x, (r, mine), 1)
            fence()
        else:  # a release store and an acquire load: no full barrier between them
            store_release(x, (r, mine), 1)
        res[r, me] = load_acquire(x, (r, theirs))
        res[r, 2 + me] = 1  # this side ran round r (the other may have timed out first)


def _run_sb(kind):
    with _arena(x=(ROUNDS, 2), res=(ROUNDS, 4)) as a:
        t = a.t
        _warm(_sb, t, (t.x, t.res), kind)
        deadline = time.monotonic_ns() + NS  # CLOCK_MONOTONIC, as monotonic_ns()
        run_forked(_sb, [(t.ctl, t.x, t.res, me, ROUNDS, deadline, kind) for me in (0, 1)])
        both_ran = (t.res[:, 2] == 1) & (t.res[:, 3] == 1)  # only rounds both sides ran count
        done = int(both_ran.sum())
        both_zero = int((both_ran & (t.res[:, 0] == 0) & (t.res[:, 1] == 0)).sum())
        return done, both_zero


@needs_two_cpus
@pytest.mark.parametrize("kind", [SB_RMW, SB_FENCE], ids=["seq_cst-rmw", "store-fence"])
def test_sb_with_a_full_barrier_is_forbidden(kind):
    done, both_zero = _run_sb(kind)
    assert done > 0
    assert both_zero == 0, f"store buffering seen {both_zero} times in {done} rounds"
    print(f"SB ({'rmw' if kind == SB_RMW else 'fence'}): {done} rounds, none reordered")


@needs_two_cpus
def test_sb_without_a_barrier_is_allowed():
    # The negative control: release store + acquire load is not a full barrier (x86's
    # store buffer and arm64 both reorder it), so the protocol never relies on it.  Not
    # asserted (it depends on the two processes overlapping), only reported.
    done, both_zero = _run_sb(SB_PLAIN)
    assert done > 0
    print(f"SB (release/acquire only): {both_zero} of {done} rounds reordered")


# -- MUTEX: the spinlock ----------------------------------------------------------------------
@njit(cache=True)
def _mutex(locks, words, me, n, deadline):
    bad = 0
    for i in range(n):
        spin_lock(locks, 0, me)
        a = words[0]
        b = words[8]
        if a != b:
            bad += 1
        words[0] = a + 1
        words[8] = b + 1
        words[16 + me] += 1
        spin_unlock(locks, 0)
        if i % 1024 == 0 and monotonic_ns() > deadline:
            break
    fetch_add(words, 32, bad)


@needs_two_cpus
@pytest.mark.parametrize("procs", [2, 3])
def test_spinlock_mutual_exclusion(procs):
    with _arena(locks=(1, LOCK_NR_FIELDS), words=64) as a:
        t = a.t
        init_lock(t.locks, 0, 0, stats=False)
        _mutex(t.locks, np.zeros(64, np.int64), 0, 1, 0)  # compile (a private word array)
        deadline = time.monotonic_ns() + NS  # CLOCK_MONOTONIC, as monotonic_ns()
        run_forked(_mutex, [(t.locks, t.words, me, ROUNDS * 10, deadline) for me in range(procs)])
        sections = int(t.words[16:16 + procs].sum())
        assert sections > 0
        assert int(t.words[32]) == 0, "a critical section saw another's half-done update"
        assert t.words[0] == t.words[8] == sections, "an update was lost"
        assert t.locks[0, LOCK_WORD] == 0


# -- ABA: a tagged CAS freelist ----------------------------------------------------------------
NODES = 16
TAG = 1 << 32


@njit(cache=True)
def _pop(head, nxt):
    while True:
        h = load_acquire(head, 0)  # pairs with _push's cmpxchg (release of the node)
        i = (h & (TAG - 1)) - 1
        if i < 0:
            return -1
        new = ((h >> 32) + 1) * TAG + nxt[i]
        if cmpxchg(head, 0, h, new) == h:
            return i


@njit(cache=True)
def _push(head, nxt, i):
    while True:
        h = load_acquire(head, 0)
        nxt[i] = h & (TAG - 1)
        new = ((h >> 32) + 1) * TAG + (i + 1)
        if cmpxchg(head, 0, h, new) == h:  # seq_cst: releases nxt[i] and the payload
            return


@njit(cache=True)
def _aba(head, nxt, payload, owner, stats, me, n, deadline):
    bad_payload = 0
    bad_owner = 0
    ops = 0
    for it in range(n):
        i = _pop(head, nxt)
        if i < 0:
            cpu_relax()
            continue
        if xchg(owner, i * 8, me + 1) != 0:  # nobody else may hold node i now
            bad_owner += 1
        if payload[i, 1] != payload[i, 0] * 7 + i:  # written by the last pusher
            bad_payload += 1
        v = payload[i, 0] + 1
        payload[i, 0] = v
        payload[i, 1] = v * 7 + i
        store_relaxed(owner, i * 8, 0)
        _push(head, nxt, i)
        ops += 1
        if it % 1024 == 0 and monotonic_ns() > deadline:
            break
    fetch_add(stats, 0, ops)
    fetch_add(stats, 8, bad_payload)
    fetch_add(stats, 16, bad_owner)


@needs_two_cpus
@pytest.mark.parametrize("procs", [2, 3])
def test_aba_tagged_cas_freelist(procs):
    with _arena(head=8, nxt=NODES, payload=(NODES, 2), owner=NODES * 8, stats=32) as a:
        t = a.t
        for i in range(NODES):
            t.payload[i] = (0, i)
            _push(t.head, t.nxt, i)
        deadline = time.monotonic_ns() + NS  # CLOCK_MONOTONIC, as monotonic_ns()
        _aba(t.head, t.nxt, t.payload, t.owner, np.zeros(32, np.int64), 0, 1, deadline)  # compile
        run_forked(_aba, [(t.head, t.nxt, t.payload, t.owner, t.stats, me, ROUNDS * 10, deadline)
                          for me in range(procs)])
        ops = int(t.stats[0])
        assert ops > 0
        assert int(t.stats[16]) == 0, "two processes held one node"
        assert int(t.stats[8]) == 0, "a popped node's payload was stale"
        # every node is back on the list exactly once, and each pop/push was counted
        seen = set()
        while (i := _pop(t.head, t.nxt)) >= 0:
            assert i not in seen
            seen.add(i)
        assert seen == set(range(NODES))
        assert int(t.payload[:, 0].sum()) == ops + 1  # + the compile's own pop/push


def _warm(fn, t, tables, *extra):
    """Compile `fn` in the parent (private copies of the tables, a deadline already past)."""
    ctl = np.zeros(64, np.int64)
    ctl[C_PROGRESS + 8] = 1  # the other side is there for round 0
    ctl[C_PROGRESS] = 1
    copies = tuple(np.zeros_like(x) for x in tables)
    fn(ctl, *copies, 0, 1, 0, *extra)
