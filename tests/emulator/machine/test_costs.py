"""Cost files (emulator/machine/costs.py): every shipped file loads; a bad one is one
ConfigError naming the file and the field, and exit status 2 from the command line."""

from __future__ import annotations

import tomllib

import pytest

from emulator.cli import main
from emulator.machine.costs import COSTS_DIR, SECTIONS, available_costs, load_costs
from topo.errors import ConfigError


def test_shipped_cost_files_load_and_cite_sources():
    names = available_costs()
    assert {"xeon-2s-2014", "epyc-rome", "arm64-altra"} <= set(names)
    for n in names:
        c = load_costs(n)
        assert c.remote(c["line.remote_distance"]) == c["line.remote"]
        text = (COSTS_DIR / f"{n}.toml").read_text()
        # every number carries a comment (its source or its derivation)
        for line in text.splitlines():
            if "=" in line and not line.startswith("#") and line.split("=")[0].strip() in \
                    {f for fs in SECTIONS.values() for f in fs}:
                assert "#" in line, f"{n}: {line!r} cites no source"


def _write(tmp_path, mutate):
    data = tomllib.loads((COSTS_DIR / "xeon-2s-2014.toml").read_text())
    mutate(data)
    lines = []
    for k, v in data.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {v!r}".replace("'", '"'))
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{f} = {x!r}".replace("'", '"') for f, x in v.items()]
    p = tmp_path / "bad.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["line"].pop("remote"), "line.remote"),
    (lambda d: d["slub"].__setitem__("alloc_fastpath", -3), "slub.alloc_fastpath"),
    (lambda d: d["lock"].__setitem__("list_lock", 4.5), "lock.list_lock"),
    (lambda d: d["ipi"].__setitem__("sendd", 3), "ipi.sendd"),
    (lambda d: d.pop("rcu"), "rcu"),
    (lambda d: d["line"].__setitem__("remote_distance", 5), "line.remote_distance"),
])
def test_bad_cost_file_names_file_and_field(tmp_path, mutate, field):
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as e:
        load_costs(str(p))
    assert e.value.field == field and str(p) in str(e.value)


def test_bad_cost_file_exits_2_with_one_line(tmp_path, capsys):
    p = _write(tmp_path, lambda d: d["run"].__setitem__("poll", "fast"))
    code = main(["run", "local-fastpath", "--mode", "virtual", "--ops", "10", "--costs", str(p),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert str(p) in err[0] and "run.poll" in err[0] and "expected" in err[0]
    code = main(["run", "local-fastpath", "--mode", "virtual", "--costs", "no-such-host",
                 "--out", str(tmp_path / "out2"), "--no-progress"])
    assert code == 2
