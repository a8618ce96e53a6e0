"""Compile progress (run/warmup.py): said at the first cache miss, counted per function,
silent when everything comes from the cache."""

from __future__ import annotations

import io
import json

import pytest
from numba import njit

from emulator.run.warmup import CompileProgress


def _fresh_functions():
    # New dispatchers, not cached: each call below is a compile numba reports.
    @njit(cache=False)
    def leaf(x):
        return x + 1

    @njit(cache=False)
    def caller(x):
        return leaf(x) * 2

    return caller


def test_plain_lines_from_the_first_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    out = io.StringIO()
    with CompileProgress(stream=out, tty=False, interval=0.0) as p:
        assert _fresh_functions()(3) == 8
    text = out.getvalue().splitlines()
    assert text[0].startswith("slabemu: compiling the model: ")
    assert "functions are not in numba's cache" in text[0]
    assert any("/" in line and "leaf" in line for line in text), text  # [n/total] name
    assert p.done == 2
    assert text[-1].startswith("slabemu: compiled 2 functions in ")
    counts = json.loads((tmp_path / "compile-counts.json").read_text())
    assert counts[__name__] == 2  # the total next time, for this module


def test_quiet_and_warm_say_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    f = _fresh_functions()
    out = io.StringIO()
    with CompileProgress(stream=out, tty=False, quiet=True) as p:
        f(1)
    assert p.done == 2 and out.getvalue() == ""
    with CompileProgress(stream=out, tty=False) as p:
        f(2)  # compiled already: no compile, no line
    assert p.done == 0 and out.getvalue() == ""


def test_a_terminal_gets_a_bar(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    out = io.StringIO()
    with CompileProgress(stream=out, tty=True) as p:
        _fresh_functions()(1)
        assert p._bar is not None
    assert p._bar is None and p.done == 2
    assert "compiled 2 functions" in out.getvalue()


# -- the parallel cold compile (run/warmup.py's _PHASES) ------------------------------------
def test_every_compile_unit_names_a_compiled_function_with_its_callers_arity():
    import numba

    from emulator.kernel.boot import Kernel
    from emulator.run import warmup as W

    with Kernel(W.warm_up_topology(), "slub") as K:
        mem_type = numba.typeof(K.mem)
    seen = set()
    for mine, childs in W._PHASES:
        assert not set(mine) & set(childs)
        for unit in mine + childs:
            disp = W.unit_dispatcher(unit)
            assert disp is not None, unit
            # an IR-inlined function is never compiled on its own: naming it wastes a compile
            assert disp.targetoptions.get("inline", "never") != "always", unit
            assert W.unit_signature(unit, mem_type) is not None, unit
            assert unit not in seen, unit
            seen.add(unit)


_COLD = """
import json, sys
from emulator.run.warmup import CompileProgress, warm_up
p = CompileProgress(quiet=True)
warm_up(scripted=True, jobs={jobs}, progress=p)
print(json.dumps(p.compiled))
"""


def _cold(tmp_path, jobs):
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _COLD.format(jobs=jobs)], env=env,
                         capture_output=True, text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_parallel_cold_compile_compiles_each_function_once_and_leaves_nothing(tmp_path):
    """Two processes on a cold cache: no emulator function is compiled twice for one
    signature (by both processes), and a serial warm-up afterwards finds everything in
    the cache (nothing left to compile)."""
    compiled = _cold(tmp_path, 2)
    ours = [n for n in compiled if not n.startswith("numba.")]
    assert len(ours) > 100
    twice = sorted({n for n in ours if ours.count(n) > 1})
    assert not twice, twice
    assert _cold(tmp_path, 1) == []
