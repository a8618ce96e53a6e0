"""Atomics, a monotonic clock and sched_yield for jitted code, as numba intrinsics.

What it models: the kernel's atomic_t / cmpxchg / smp_* barrier API on int64 words of
shared numpy arrays (the arena).  Each intrinsic emits one LLVM instruction (`cmpxchg`,
`atomicrmw`, `load atomic`, `store atomic`, `fence`), so it compiles to the same machine
code as C11 atomics: `lock cmpxchg` / `lock xadd` on x86_64, LSE `cas` / `ldadd` (or an
ll/sc loop) on arm64.  No ctypes anywhere: ctypes calls defeat numba's cache.

Every intrinsic takes the array and an index; the index is an integer for a 1-D array or
a tuple of integers for an N-D table (`atomic_add(tab, (row, FIELD), 1)`).  The array's
dtype must be int64 (uint8 for the byte variants is not provided: shadow memory is only
written under locks or by its owner).

Memory orders, as in the kernel:
  cmpxchg, xchg, fetch_add/or/and   sequentially consistent (a full barrier, like the
                                    kernel's value-returning atomics)
  load_acquire / store_release      smp_load_acquire / smp_store_release
  load_relaxed                      READ_ONCE: atomic, unordered, never hoisted out of a
                                    spin loop (a plain numpy load may be)
  fence                             smp_mb

cpu_relax() is `pause` on x86_64 and `yield` on arm64, picked from the host arch at import.
sched_yield() and monotonic_ns() call libc directly (clock_gettime(CLOCK_MONOTONIC), a vDSO
call on Linux: portable to arm64, unlike rdtsc); the cost per call is measured by
tools/bench/primitives.py.
"""

from __future__ import annotations

import platform

import llvmlite.binding as llvm
from numba import config as numba_config
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

# cpu_relax() is inline asm: the JIT's streamer needs the native asm parser.
llvm.initialize_native_asmparser()

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)

CLOCK_MONOTONIC = 1  # the same constant on Linux x86_64 and arm64

_MACHINE = platform.machine().lower()
if _MACHINE in ("x86_64", "amd64", "i686", "i386"):
    _RELAX_ASM = "pause"
elif _MACHINE in ("aarch64", "arm64"):
    _RELAX_ASM = "yield"
else:  # an unknown host still runs: a compiler barrier instead of a hint
    _RELAX_ASM = ""


def _check_array(arr, idx):
    if not isinstance(arr, types.Array) or arr.dtype != types.int64:
        raise TypingError(f"atomics need an int64 array, got {arr}")
    if isinstance(idx, types.Integer):
        if arr.ndim != 1:
            raise TypingError(f"an integer index needs a 1-D array, got {arr.ndim}-D")
    elif isinstance(idx, types.BaseTuple):
        if len(idx) != arr.ndim or not all(isinstance(t, types.Integer) for t in idx):
            raise TypingError(f"index {idx} does not fit a {arr.ndim}-D array")
    else:
        raise TypingError(f"bad index type {idx}")


def _elem_ptr(context, builder, arrty, arr, idxty, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    if isinstance(idxty, types.BaseTuple):
        raw = cgutils.unpack_tuple(builder, idx, len(idxty))
        inds = [context.cast(builder, v, t, types.intp) for v, t in zip(raw, idxty)]
    else:
        inds = [context.cast(builder, idx, idxty, types.intp)]
    return cgutils.get_item_pointer(context, builder, arrty, ary, inds)


def _as_i64(context, builder, val, ty):
    return context.cast(builder, val, ty, types.int64)


@intrinsic
def cmpxchg(typingctx, arr, idx, old, new):
    """Compare-and-swap: if arr[idx] == old, store new.  Returns the previous value."""
    _check_array(arr, idx)
    sig = types.int64(arr, idx, old, new)

    def codegen(context, builder, sig, args):
        ptr = _elem_ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        o = _as_i64(context, builder, args[2], sig.args[2])
        n = _as_i64(context, builder, args[3], sig.args[3])
        res = builder.cmpxchg(ptr, o, n, "seq_cst", "seq_cst")
        return builder.extract_value(res, 0)

    return sig, codegen


def _with_value(restype, emit, name):
    """An intrinsic name(arr, idx, val) returning restype: emit(context, builder, ptr, v)
    generates it from &arr[idx] and val as an int64."""
    def impl(typingctx, arr, idx, val):
        _check_array(arr, idx)
        sig = restype(arr, idx, val)

        def codegen(context, builder, sig, args):
            ptr = _elem_ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1])
            v = _as_i64(context, builder, args[2], sig.args[2])
            return emit(context, builder, ptr, v)

        return sig, codegen

    impl.__name__ = name
    return intrinsic(impl)


def _rmw(op):
    def emit(context, builder, ptr, v):
        return builder.atomic_rmw(op, ptr, v, "seq_cst")

    return _with_value(types.int64, emit, f"fetch_{op}")


fetch_add = _rmw("add")  # returns the value before the add
fetch_or = _rmw("or")
fetch_and = _rmw("and")
xchg = _rmw("xchg")


def _load(ordering):
    def impl(typingctx, arr, idx):
        _check_array(arr, idx)
        sig = types.int64(arr, idx)

        def codegen(context, builder, sig, args):
            ptr = _elem_ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1])
            return builder.load_atomic(ptr, ordering, 8)

        return sig, codegen

    return intrinsic(impl)


load_acquire = _load("acquire")
load_relaxed = _load("monotonic")


def _store(ordering, name):
    def emit(context, builder, ptr, v):
        builder.store_atomic(v, ptr, ordering, 8)
        return context.get_dummy_value()

    return _with_value(types.void, emit, name)


store_release = _store("release", "store_release")  # smp_store_release(&arr[idx], val)
store_relaxed = _store("monotonic", "store_relaxed")  # WRITE_ONCE(arr[idx], val)


# The intrinsics below each return numba's (signature, codegen) pair around one LLVM
# instruction or call: alike in shape only.
@intrinsic
def fence(typingctx):
    """smp_mb(): a full sequentially consistent fence."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """The spin-wait hint: `pause` (x86_64) or `yield` (arm64); also a compiler barrier."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.VoidType(), [])
        asm = ir.InlineAsm(fnty, _RELAX_ASM, "~{memory}", side_effect=True)
        builder.call(asm, [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def sched_yield(typingctx):
    """libc sched_yield(): give the host CPU away (oversubscribed spinning)."""
    sig = types.int64()

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_I32, [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
        return builder.sext(builder.call(fn, []), _I64)

    return sig, codegen


@intrinsic
def monotonic_ns(typingctx):
    """clock_gettime(CLOCK_MONOTONIC) in nanoseconds."""
    sig = types.int64()

    def codegen(context, builder, sig, args):
        ts_ty = ir.LiteralStructType([_I64, _I64])
        ts = cgutils.alloca_once(builder, ts_ty)
        fnty = ir.FunctionType(_I32, [_I32, ts_ty.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        builder.call(fn, [ir.Constant(_I32, CLOCK_MONOTONIC), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(_I64, 1_000_000_000)), nsec)

    return sig, codegen


# -- the pure-Python baseline -------------------------------------------------------------
# With NUMBA_DISABLE_JIT=1 (tools/bench/fastpath.py's baseline) intrinsics cannot run, so
# these plain functions stand in.  They are NOT atomic across processes: that mode is
# single-process only.
if numba_config.DISABLE_JIT:  # pragma: no cover - exercised by the benchmark baseline
    import time as _time

    def cmpxchg(arr, idx, old, new):  # noqa: F811
        cur = int(arr[idx])
        if cur == old:
            arr[idx] = new
        return cur

    def _py_rmw(fn):
        def rmw(arr, idx, val):
            cur = int(arr[idx])
            arr[idx] = fn(cur, val)
            return cur
        return rmw

    fetch_add = _py_rmw(lambda a, b: a + b)  # noqa: F811
    fetch_or = _py_rmw(lambda a, b: a | b)  # noqa: F811
    fetch_and = _py_rmw(lambda a, b: a & b)  # noqa: F811
    xchg = _py_rmw(lambda a, b: b)  # noqa: F811

    def load_acquire(arr, idx):  # noqa: F811
        return int(arr[idx])

    load_relaxed = load_acquire  # noqa: F811

    def store_release(arr, idx, val):  # noqa: F811
        arr[idx] = val

    store_relaxed = store_release  # noqa: F811

    def fence():  # noqa: F811
        pass

    def cpu_relax():  # noqa: F811
        pass

    def sched_yield():  # noqa: F811
        return 0

    def monotonic_ns():  # noqa: F811
        return _time.monotonic_ns()
