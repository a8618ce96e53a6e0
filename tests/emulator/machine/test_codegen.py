"""What the atomics compile to: numba's assembly checked instruction by instruction.

emulator/machine/atomics.py promises that each intrinsic is one LLVM atomic instruction,
so that it compiles to what C11 atomics and the kernel's primitives compile to.  This
reads the machine code numba generated (`Dispatcher.inspect_asm()`) for the host arch:

  operation          x86_64                        aarch64
  cmpxchg            lock cmpxchgq                 casal (LSE) or ldaxr/stlxr loop
  fetch_add          lock xaddq                    ldaddal (LSE) or ldaxr/stlxr loop
  fence (smp_mb)     mfence or a locked op         dmb ish
  load_acquire       plain mov (TSO)               ldar
  store_release      plain mov (TSO)               stlr
  load_relaxed       plain mov                     ldr (not ldar)
  cpu_relax          pause                         yield

Each probe is compiled here without numba's cache (inspection is disabled for cached
code), and so are fresh copies of the model's own lock and inbox functions (their
`py_func`), so the check covers the code the model runs, not just the intrinsics.  It
runs natively on x86_64 in the default suite and under qemu on aarch64 in
tools/arm64/check; on any other arch it is skipped.
"""

from __future__ import annotations

import platform
import re

import numpy as np
import pytest
from numba import njit

from emulator.machine import structs as S
from emulator.machine.atomics import (
    cmpxchg,
    cpu_relax,
    fence,
    fetch_add,
    load_acquire,
    load_relaxed,
    store_release,
    xchg,
)
from emulator.machine.inbox import inbox_recv, inbox_send
from emulator.machine.spinlock import spin_lock, spin_trylock, spin_unlock

ARCH = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())

pytestmark = pytest.mark.skipif(ARCH not in ("x86_64", "aarch64"),
                                reason=f"no instruction table for {ARCH}")


@njit
def _p_cmpxchg(a):
    return cmpxchg(a, 0, 1, 2)


@njit
def _p_fetch_add(a):
    return fetch_add(a, 0, 3)


@njit
def _p_xchg(a):
    return xchg(a, 0, 7)


@njit
def _p_fence():
    fence()


@njit
def _p_load_acquire(a):
    return load_acquire(a, 0)


@njit
def _p_store_release(a, v):
    store_release(a, 0, v)


@njit
def _p_load_relaxed(a):
    return load_relaxed(a, 1)


@njit
def _p_cpu_relax():
    cpu_relax()


def _body(dispatcher, args) -> str:
    """The assembly of the compiled function itself (not numba's CPython wrapper),
    with directives and comments dropped."""
    dispatcher(*args)
    asm = "\n".join(dispatcher.inspect_asm().values())
    name = dispatcher.py_func.__name__
    out, inside = [], False
    for line in asm.splitlines():
        if not inside and re.match(rf"^_ZN\S*{len(name)}{re.escape(name)}\S*:\s*$", line) \
                and "cpython" not in line:
            inside = True
            continue
        if inside:
            if line.startswith(".Lfunc_end"):
                break
            s = line.strip()
            if s and not s.startswith((".", "//", "#", "@", ";")):
                out.append(re.sub(r"\s+", " ", s))
    assert out, f"no assembly found for {name}"
    return "\n".join(out)


def _fresh(dispatcher):
    """An uncached copy of one of the model's jitted functions, so it can be inspected."""
    return njit(dispatcher.py_func)


def _ops(body: str) -> list[str]:
    """The mnemonics, in order (x86's `lock` prefix kept with its instruction)."""
    ops = []
    for ln in body.splitlines():
        words = ln.replace(",", " ").split()
        if words[0] == "lock" and len(words) > 1:
            ops.append("lock " + words[1])
        elif ops and ops[-1] == "lock":
            ops[-1] = "lock " + words[0]
        else:
            ops.append(words[0])
    return ops


def _has(body, pattern):
    return any(re.fullmatch(pattern, op) for op in _ops(body))


# -- the expectations per arch -------------------------------------------------------------
# aarch64: ARMv8.1 LSE where LLVM's target CPU has it, else load-exclusive/store-exclusive
# loops with acquire+release semantics (what the kernel's LL/SC atomics are).
A64_CAS = r"casal|cas[al]*"
A64_LDX = r"ldaxr"
A64_STX = r"stlxr"


def _expect_rmw(body, x86_op, lse_op):
    if ARCH == "x86_64":
        assert _has(body, rf"lock {x86_op}q?") or (x86_op == "xchg" and _has(body, r"xchgq?")), body
    else:
        assert _has(body, lse_op) or (_has(body, A64_LDX) and _has(body, A64_STX)), body
        # sequentially consistent: an LL/SC loop must be acquire + release, LSE the -al form
        if _has(body, lse_op):
            assert any(re.fullmatch(lse_op, op) and op.endswith("al") for op in _ops(body)), body


def test_cmpxchg_is_one_locked_compare_and_swap():
    a = np.zeros(4, np.int64)
    body = _body(_p_cmpxchg, (a,))
    _expect_rmw(body, "cmpxchg", A64_CAS)
    assert a[0] == 0  # old value 1 did not match: nothing stored


def test_fetch_add_is_one_locked_add():
    body = _body(_p_fetch_add, (np.zeros(4, np.int64),))
    _expect_rmw(body, "xadd", r"ldaddal|ldadd[al]*")


def test_xchg_is_one_swap():
    body = _body(_p_xchg, (np.zeros(4, np.int64),))
    _expect_rmw(body, "xchg", r"swpal|swp[al]*")


def test_fence_is_a_full_barrier():
    body = _body(_p_fence, ())
    if ARCH == "x86_64":
        assert _has(body, "mfence") or _has(body, r"lock (or|add)[lq]?"), body
    else:
        assert "dmb ish" in body.splitlines(), body


def test_load_acquire():
    body = _body(_p_load_acquire, (np.zeros(4, np.int64),))
    if ARCH == "x86_64":  # TSO: every load is an acquire, so no fence and no lock
        assert not _has(body, r"lock .*|mfence|[lsm]fence"), body
        assert _has(body, r"movq?"), body
    else:
        assert _has(body, "ldar"), body
        assert not _has(body, "dmb"), body


def test_store_release():
    body = _body(_p_store_release, (np.zeros(4, np.int64), 5))
    if ARCH == "x86_64":  # TSO: a plain store is a release (a seq_cst one would be xchg)
        assert not _has(body, r"lock .*|xchgq?|mfence"), body
    else:
        assert _has(body, "stlr"), body
        assert not _has(body, "dmb"), body


def test_load_relaxed_is_a_plain_load():
    body = _body(_p_load_relaxed, (np.zeros(4, np.int64),))
    if ARCH == "x86_64":
        assert not _has(body, r"lock .*|mfence"), body
    else:
        assert _has(body, "ldr") and not _has(body, "ldar"), body


def test_cpu_relax_is_the_spin_hint():
    body = _body(_p_cpu_relax, ())
    assert _has(body, "pause" if ARCH == "x86_64" else "yield"), body


# -- the model's own functions -------------------------------------------------------------

def _locks():
    return np.zeros((2, S.LOCK_NR_FIELDS), np.int64)


def test_spin_lock_takes_the_lock_with_a_compare_and_swap():
    locks = _locks()
    for f in (spin_lock, spin_trylock):
        body = _body(_fresh(f), (locks, 0, 1) if f is spin_lock else (locks, 1, 1))
        _expect_rmw(body, "cmpxchg", A64_CAS)


def test_spin_unlock_is_a_release_store():
    locks = _locks()
    locks[0, S.LOCK_WORD] = 1
    body = _body(_fresh(spin_unlock), (locks, 0))
    assert locks[0, S.LOCK_WORD] == 0
    if ARCH == "x86_64":
        assert not _has(body, r"lock .*|xchgq?|mfence"), body
    else:
        assert _has(body, "stlr"), body


def _ring():
    cap, width = 4, 3
    inbox = np.zeros((1, 2, S.INBOX_NR_FIELDS), np.int64)
    slots = np.zeros((1, cap, 1 + width), np.int64)
    slots[0, :, S.SLOT_SEQ] = np.arange(cap)
    return inbox, slots


def test_inbox_publishes_with_release_and_reads_with_acquire():
    inbox, slots = _ring()
    msg = np.array([7, 8, 9], np.int64)
    out = np.zeros(3, np.int64)
    send = _body(_fresh(inbox_send), (inbox, slots, 0, msg))
    recv = _body(_fresh(inbox_recv), (inbox, slots, 0, out))
    assert list(out) == [7, 8, 9]
    _expect_rmw(send, "cmpxchg", A64_CAS)  # claiming the slot
    if ARCH == "aarch64":
        # the payload is published by stlr of the slot's seq and read after ldar of it
        assert _has(send, "stlr") and _has(recv, "ldar") and _has(recv, "stlr"), (send, recv)
