"""The emulator's PRNG: xorshift64 (Marsaglia 2003, shifts 13, 7, 17), callable from jitted code.

Used wherever a run draws a random number (fault injection, workloads, the deterministic
scheduler), so that one seed gives one run.  The state is a non-zero int64 word; the
arithmetic is done on uint64 so that right shifts are logical.
"""

from __future__ import annotations

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
