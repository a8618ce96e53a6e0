"""Per-CPU MPSC inboxes: nothing lost, nothing duplicated, per-producer order kept."""

from __future__ import annotations

import numpy as np
from numba import njit

from emulator.machine.arena import Arena, LayoutBuilder
from emulator.machine.inbox import inbox_pending, inbox_recv, inbox_send, init_inboxes
from emulator.machine.spinlock import spin_barrier
from emulator.machine.structs import INBOX_CONSUMER, INBOX_COUNT, INBOX_PRODUCER, STRUCTS

from ..conftest import run_forked

W = STRUCTS["inbox"].width(64)
CAP = 64  # small, so that producers often find the ring full


@njit(cache=True)
def _produce(inbox, slots, dest, me, n, bar, parties):
    """Send n messages; bar[1 + me] counts the sends the full ring refused."""
    spin_barrier(bar, 0, parties)
    msg = np.zeros(2, np.int64)
    msg[0] = me
    refused = 0
    for i in range(n):
        msg[1] = i
        while not inbox_send(inbox, slots, dest, msg):
            refused += 1
    bar[1 + me] = refused


@njit(cache=True)
def _consume(inbox, slots, me, total, nprod, bar, parties):
    spin_barrier(bar, 0, parties)
    last = np.full(nprod, -1, np.int64)
    got = np.zeros(nprod, np.int64)
    out = np.zeros(2, np.int64)
    k = 0
    while k < total:
        if inbox_recv(inbox, slots, me, out):
            p, i = out[0], out[1]
            if i != last[p] + 1:  # lost, duplicated or reordered
                return 1
            last[p] = i
            got[p] += 1
            k += 1
    return 0 if inbox_pending(inbox, me) == 0 else 2


def _consumer(inbox, slots, me, total, nprod, bar, parties):
    rc = _consume(inbox, slots, me, total, nprod, bar, parties)
    if rc:
        raise SystemExit(10 + rc)


def test_three_producers_one_consumer():
    b = LayoutBuilder()
    b.add("inbox", np.int64, (2, 2, W))
    b.add("slots", np.int64, (2, CAP, 3))
    n, nprod = 100_000, 3
    b.add("bar", np.int64, 1 + nprod)  # the barrier word, then each producer's refusals
    with Arena.create(b.build()) as a:
        init_inboxes(a.t.inbox, a.t.slots)
        # compile both in the parent
        ib, sl = np.zeros((2, 2, W), np.int64), np.zeros((2, CAP, 3), np.int64)
        init_inboxes(ib, sl)
        _produce(ib, sl, 1, 0, 1, np.zeros(2, np.int64), 1)
        assert _consume(ib, sl, 1, 1, 1, np.zeros(1, np.int64), 1) == 0
        args = [(a.t.inbox, a.t.slots, 1, p, n, a.t.bar, nprod + 1) for p in range(nprod)]
        procs = [(_produce, x) for x in args]
        from ..conftest import FORK
        cons = FORK.Process(target=_consumer,
                            args=(a.t.inbox, a.t.slots, 1, n * nprod, nprod, a.t.bar, nprod + 1))
        cons.start()
        try:
            run_forked(_produce, [x for _, x in procs])
            cons.join(120)
            assert not cons.is_alive()
            assert cons.exitcode == 0
        finally:
            if cons.is_alive():
                cons.kill()
                cons.join()
        assert a.t.inbox[1, INBOX_CONSUMER, INBOX_COUNT] == n * nprod
        # every refused send, and nothing else, is counted on the producer side
        assert a.t.inbox[1, INBOX_PRODUCER, INBOX_COUNT] == a.t.bar[1:].sum()


def test_full_ring_refuses_and_recovers():
    ib, sl = np.zeros((1, 2, W), np.int64), np.zeros((1, 4, 3), np.int64)
    init_inboxes(ib, sl)
    msg = np.array([7, 0], np.int64)
    sent = [bool(inbox_send(ib, sl, 0, msg)) for _ in range(6)]
    assert sent == [True] * 4 + [False] * 2
    assert ib[0, INBOX_PRODUCER, INBOX_COUNT] == 2
    out = np.zeros(2, np.int64)
    assert inbox_recv(ib, sl, 0, out) and list(out) == [7, 0]
    assert inbox_send(ib, sl, 0, msg)
    got = 0
    while inbox_recv(ib, sl, 0, out):
        got += 1
    assert got == 4 and inbox_pending(ib, 0) == 0
