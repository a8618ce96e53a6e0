"""Compile progress (run/warmup.py): said at the first cache miss, counted per function,
silent when everything comes from the cache."""

from __future__ import annotations

import io
import json

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
