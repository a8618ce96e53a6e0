"""Acquire loads, release stores and atomic adds on shared int64 words, for Python code.

What it models: the runner's parent process is a party to the control protocol of the
worker loop (run/loop.py), and a numpy read or write from Python is a plain access:
nothing orders it on a weakly ordered CPU (arm64), where the parent could read the
tables of a paused machine before it sees ctl.paused reach the worker count, or let the
workers resume before its checker's reads are done.  These thin jitted wrappers give the
parent the same primitives as jitted code (emulator/machine/atomics.py):

  acquire_load(arr, row, col)      smp_load_acquire(&arr[row, col])
  release_store(arr, row, col, v)  smp_store_release(&arr[row, col], v)
  atomic_add(arr, row, col, v)     atomic_add_return(v) - v: the value before (seq_cst)

Each call costs a dispatch from Python (about a microsecond): for control words, never
for hot paths.  No locks; the invariant is the pairing each caller names in a comment.
"""

from __future__ import annotations

from numba import njit

from .atomics import fetch_add, load_acquire, store_release


@njit(cache=True, _nrt=False)
def acquire_load(arr, row, col):
    return load_acquire(arr, (row, col))


@njit(cache=True, _nrt=False)
def release_store(arr, row, col, v):
    store_release(arr, (row, col), v)


@njit(cache=True, _nrt=False)
def atomic_add(arr, row, col, v):
    return fetch_add(arr, (row, col), v)
