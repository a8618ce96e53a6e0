"""The emulator's PRNG: xorshift64 (Marsaglia 2003, shifts 13, 7, 17), callable from jitted code.

Used wherever a run draws a random number (fault injection, workloads, the deterministic
scheduler), so that one seed gives one run.  The state is a non-zero int64 word; the
arithmetic is done on uint64 so that right shifts are logical.  Every state a run seeds
comes from one of the streams declared below (STREAMS), through seed_stream().
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .atomics import cmpxchg, load_relaxed


@njit(cache=True)
def xorshift64(state):
    """The next state (an int64 holding a uint64 bit pattern); never 0 for a non-zero input."""
    x = np.uint64(state)
    x ^= x << np.uint64(13)
    x ^= x >> np.uint64(7)
    x ^= x << np.uint64(17)
    return np.int64(x)


@njit(cache=True)
def uniform_below(state, n):
    """Map a state to [0, n) (n > 0) from its high bits."""
    return np.int64((np.uint64(state) >> np.uint64(11)) % np.uint64(n))


@njit(cache=True)
def shared_next(arr, idx):
    """Advance a PRNG state word shared between processes (a CAS loop); return it."""
    while True:
        old = load_relaxed(arr, idx)
        new = xorshift64(old)
        if cmpxchg(arr, idx, old, new) == old:
            return new


def seed_state(seed: int, stream: int = 0) -> int:
    """A non-zero initial state from a user seed and a stream number (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + (stream + 1) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    z ^= z >> 31
    z = z or 0x2545F4914F6CDD1D
    return z - (1 << 64) if z >= (1 << 63) else z


class Stream(NamedTuple):
    """A range of PRNG streams: user i (0 <= i < count) is seeded from stream base + i."""
    name: str
    base: int
    count: int
    drives: str


# Every seeded PRNG stream, declared once.  The bases are the stream numbers runs have
# always used, so one seed still gives the same run byte for byte; the ranges
# [base, base + count) are disjoint (checked below), each count being the spacing to the
# next base, and seed_stream() refuses a user beyond its range (more CPUs or zones than
# the spacing allows would share a stream with another user).
STREAM_SCHED = Stream("sched", 7, 1, "run/scripted.py: the scripted scheduler's pick of a CPU")
STREAM_CPU = Stream("cpu", 1000, 4000, "kernel/boot.py: CPU i's rng word (preemption faults, "
                    "get_any_partial's remote_node_defrag_ratio draw)")
STREAM_WORKLOAD = Stream("workload", 5000, 2000, "workload/generator.py: CPU i's generator")
STREAM_ZONE_FAIL = Stream("zone_fail", 7000, 2000, "kernel/page_alloc.py: fail_page_alloc's "
                          "draws on zone i")
STREAM_WORKER = Stream("worker", 9000, 1 << 20, "run/runner.py: worker i's pick of its next "
                       "emulated CPU (worker 0 in deterministic mode); the last range, open-ended")
STREAMS = (STREAM_SCHED, STREAM_CPU, STREAM_WORKLOAD, STREAM_ZONE_FAIL, STREAM_WORKER)


def overlapping_streams(streams) -> list[tuple[str, str]]:
    """Pairs of streams whose ranges share a stream number."""
    return [(a.name, b.name) for i, a in enumerate(streams) for b in streams[i + 1:]
            if a.base < b.base + b.count and b.base < a.base + a.count]


assert not overlapping_streams(STREAMS), overlapping_streams(STREAMS)


def seed_stream(seed: int, stream: Stream, i: int = 0) -> int:
    """The initial state of user i of `stream` under a run seed."""
    if not 0 <= i < stream.count:
        raise ValueError(f"PRNG stream {stream.name!r} has {stream.count} users, not {i + 1} "
                         f"(its range would overlap the next stream's)")
    return seed_state(seed, stream.base + i)
