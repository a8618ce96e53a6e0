"""Per-CPU inboxes: bounded multi-producer single-consumer rings in shared memory.

What it models: the hand-over of objects and messages between emulated CPUs (an object
allocated on one CPU and kfree()d on another, IPIs, work items), in the place of the
kernel's llist-based queues.  This is D. Vyukov's bounded queue with a sequence number
per slot, used with a single consumer (the owning CPU).

Tables (structs.INBOX_*):
  inbox[cpu, side, :]         side INBOX_PRODUCER: `pos` is the enqueue position, CAS'd
                              by producers, `count` the enqueues that found the ring full;
                              side INBOX_CONSUMER: `pos` the dequeue position, written by
                              the owner only, `count` messages received.
  slots[cpu, i, :]            word SLOT_SEQ then the payload words.

Invariants, for slot i = pos % capacity of one ring:
  seq == pos             the slot is free for the producer that claims position pos;
  seq == pos + 1         it holds the message of position pos, ready for the consumer;
  seq == pos + capacity  it was consumed and is free for position pos + capacity.
  dequeue_pos <= enqueue_pos <= dequeue_pos + capacity.
A producer publishes the payload with a release store of seq; the consumer reads seq with
an acquire load, so it never sees a half-written payload.  Messages from one producer are
received in the order that producer sent them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .atomics import cmpxchg, fetch_add, load_acquire, load_relaxed, store_release
from .structs import INBOX_CONSUMER, INBOX_COUNT, INBOX_POS, INBOX_PRODUCER, SLOT_SEQ


def init_inboxes(inbox: np.ndarray, slots: np.ndarray) -> None:
    """Empty every ring: slot i starts with seq = i."""
    inbox[...] = 0
    cap = slots.shape[1]
    slots[:, :, SLOT_SEQ] = np.arange(cap, dtype=np.int64)[None, :]


@njit(cache=True)
def inbox_send(inbox, slots, cpu, msg):
    """Enqueue payload `msg` (an int64 array) on `cpu`'s inbox.  False if it is full."""
    cap = slots.shape[1]
    width = slots.shape[2] - 1
    pos = load_relaxed(inbox, (cpu, INBOX_PRODUCER, INBOX_POS))
    while True:
        i = pos % cap
        seq = load_acquire(slots, (cpu, i, SLOT_SEQ))  # pairs with inbox_recv's release
        dif = seq - pos
        if dif == 0:
            seen = cmpxchg(inbox, (cpu, INBOX_PRODUCER, INBOX_POS), pos, pos + 1)
            if seen == pos:
                break
            pos = seen
        elif dif < 0:
            # The slot still holds a message one lap behind: the ring is full.
            fetch_add(inbox, (cpu, INBOX_PRODUCER, INBOX_COUNT), 1)
            return False
        else:
            pos = load_relaxed(inbox, (cpu, INBOX_PRODUCER, INBOX_POS))
    n = min(width, msg.shape[0])
    for k in range(n):
        slots[cpu, i, 1 + k] = msg[k]
    # release: the payload, paired with inbox_recv's load_acquire of seq
    store_release(slots, (cpu, i, SLOT_SEQ), pos + 1)
    return True


@njit(cache=True)
def inbox_recv(inbox, slots, cpu, out):
    """Dequeue one message of `cpu`'s inbox into `out` (by its owner only).  False if empty."""
    cap = slots.shape[1]
    width = slots.shape[2] - 1
    pos = inbox[cpu, INBOX_CONSUMER, INBOX_POS]
    i = pos % cap
    seq = load_acquire(slots, (cpu, i, SLOT_SEQ))  # pairs with inbox_send's store_release
    if seq != pos + 1:
        return False
    n = min(width, out.shape[0])
    for k in range(n):
        out[k] = slots[cpu, i, 1 + k]
    # release: our reads of the payload are done before a producer may reuse the slot,
    # paired with inbox_send's load_acquire of seq
    store_release(slots, (cpu, i, SLOT_SEQ), pos + cap)
    inbox[cpu, INBOX_CONSUMER, INBOX_POS] = pos + 1
    inbox[cpu, INBOX_CONSUMER, INBOX_COUNT] += 1
    return True


@njit(cache=True)
def inbox_pending(inbox, cpu):
    """Messages sent and not yet received (a snapshot)."""
    return load_relaxed(inbox, (cpu, INBOX_PRODUCER, INBOX_POS)) - load_relaxed(
        inbox, (cpu, INBOX_CONSUMER, INBOX_POS))
