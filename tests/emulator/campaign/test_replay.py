"""Reproducers: the runner's replay of a recorded schedule gives the finding again, with
the same KASAN report byte for byte; minimisation keeps the signature; bad files are one
line and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emulator.campaign.explore import Machine
from emulator.campaign.minimise import ddmin, minimise, size_of, _reproduces
from emulator.campaign.repro import load_repro, make_repro, replay
from emulator.campaign.signature import run_signatures
from emulator.campaign.spec import build_scenario
from emulator.campaign.strategies import Strategy
from emulator.cli import main
from topo import ConfigError


@pytest.fixture(scope="module")
def repro_file(uaf_finding, tmp_path_factory):
    spec, out = uaf_finding
    r = make_repro(spec, out.schedule, out.signature, {"name": "bounded"}, {"test": True},
                   {"original": size_of(spec, out.schedule)})
    r["_schedule"] = out.schedule
    summary, kasan, _ = replay(r)
    r.pop("_schedule")
    r["kasan"] = kasan
    path = tmp_path_factory.mktemp("repro") / "uaf.repro.json"
    path.write_text(json.dumps(r))
    return path


def test_replay_through_the_runner_matches_the_search(uaf_finding, repro_file):
    spec, out = uaf_finding
    r = load_repro(repro_file)
    summary, kasan, _ = replay(r)
    assert run_signatures(summary)[0]["key"] == out.signature["key"]
    assert summary["kasan"][0] == out.kasan[0]  # the runner and the restored machine agree
    assert kasan == r["kasan"] and kasan.startswith("kernel: ")


def test_cli_replay_prints_the_report_byte_for_byte(repro_file, capsys):
    assert main(["replay", str(repro_file)]) == 1
    out = capsys.readouterr().out
    assert out == json.loads(repro_file.read_text())["kasan"]
    assert main(["replay", str(repro_file)]) == 1
    assert capsys.readouterr().out == out


def test_cli_replay_trace_ends_at_the_bad_access(repro_file, capsys):
    assert main(["replay", "--trace", str(repro_file)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["step", "cpu", "0", "cpu", "1"]
    bad = [ln for ln in lines if "<-- BAD ACCESS" in ln]
    assert len(bad) == 1 and "__slab_free:stat(CPU_PARTIAL_FREE)" in bad[0]
    assert any("kw:kmem_cache_destroy:release" in ln for ln in lines)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(format="something-else"), "format"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.update(schedule="!!!not base64"), "schedule"),
    (lambda d: d.update(steps=d["steps"] + 1), "steps"),
    (lambda d: d.pop("kasan"), "kasan"),
])
def test_bad_reproducer_files(repro_file, tmp_path, mutate, field, capsys):
    d = json.loads(repro_file.read_text())
    mutate(d)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=field):
        load_repro(bad)
    assert main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("slabemu: error: ") and field in err


def test_not_json_and_missing_file(tmp_path, capsys):
    p = tmp_path / "x.json"
    p.write_bytes(b"\x00\x01garbage")
    assert main(["replay", str(p)]) == 2
    assert main(["replay", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.count("slabemu: error:") == 2


def test_ddmin_finds_the_one_minimal_subsequence():
    """ddmin on an oracle: fails iff steps 3 and 7 are both there, in order."""
    seen = []

    def test(s):
        seen.append(len(s))
        idx = [i for i, v in enumerate(s) if v in (3, 7)]
        return s if [s[i] for i in idx] == [3, 7] else None

    assert ddmin(np.arange(40), test, deadline=1e18).tolist() == [3, 7]
    assert len(seen) < 200


def test_minimise_keeps_the_signature_and_shrinks(uaf_finding):
    spec, out = uaf_finding
    key = out.signature["key"]
    mspec, msched, log = minimise(spec, out.schedule, key, budget=20.0)
    with Machine(build_scenario(mspec)) as m:
        o = m.run(Strategy("replay", replay=msched))
    assert o.signature["key"] == key
    assert len(msched) <= len(out.schedule)
    assert (mspec.ops or 99) <= spec.ops
    assert any(line.startswith("steps:") for line in log)
