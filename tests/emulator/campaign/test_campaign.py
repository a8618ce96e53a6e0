"""A campaign end to end on the small machine: the finding under v2-no-5-6, none under
v2-full, a reproducer that replays, an interrupted campaign resumed without redoing its
runs, the report of a campaign directory, bad input; the Dask engine with a LocalCluster
of two workers gives the same records."""

from __future__ import annotations

import json

import pytest

from emulator.campaign.campaign import Campaign, Params, load_campaign
from emulator.campaign.engine import DaskEngine, LocalEngine
from emulator.cli import main

ARGS = ["uaf-race", "--policies", "v2-no-5-6@4.0,v2-full@4.0", "--topologies", "twonode-2n2c",
        "--modes", "deterministic", "--strategy", "bounded,random", "--seeds", "1",
        "--ops", "30", "--faults", "preempt=0,race_delay=0", "--bound", "1", "--bounded-ops", "30",
        "--minimise-budget", "5", "--no-progress"]


def _params(**kw):
    base = dict(scenarios=["uaf-race"], policies=["v2-no-5-6@4.0", "v2-full@4.0"],
                topologies=["twonode-2n2c"], modes=["deterministic"],
                strategies=["bounded", "random"], seeds=1, ops=30,
                fault_sets=[{"preempt": 0, "race_delay": 0}], bound=1, minimise_budget=5.0,
                bounded_ops=30)
    base.update(kw)
    return Params(**base)


def _outcome(rec):
    keep = ("id", "exit", "ops", "steps", "signatures", "kasan", "bounded")
    return {k: rec.get(k) for k in keep if k != "bounded"} | (
        {"explored": rec["bounded"]["explored"]} if rec.get("bounded") else {})


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("camp") / "c"
    assert main(["stress", *ARGS, "--out", str(out)]) == 0
    return out


def test_campaign_finds_v2_no_5_6_and_not_v2_full(campaign_dir):
    data = load_campaign(campaign_dir)
    assert len(data["runs"]) == 4 and data["complete"]
    by = {(r["spec"]["policy"], r["spec"]["strategy"]): r for r in data["runs"]}
    found = by[("v2-no-5-6@4.0", "bounded")]
    # fault injection off: the search's own kernel preemption gives the preempted flavour
    assert found["bounded"]["found"] and found["signatures"][0]["kind"] == "cache-use-after-free"
    assert (campaign_dir / found["results"] / "kasan.txt").read_text().count("BUG: KASAN") == 1
    none = by[("v2-full@4.0", "bounded")]
    assert none["bounded"]["text"].startswith("no finding within 1 preemptions")
    assert all(not r["signatures"] for (p, _), r in by.items() if p == "v2-full@4.0")
    [f] = data["findings"]
    assert f["signature"]["kind"] == "cache-use-after-free"
    [rep] = data["reproducers"]
    m, o = rep["size"]["minimal"], rep["size"]["original"]
    assert m["steps"] <= o["steps"] and m["cpus"] == 2


def test_campaign_reproducer_replays(campaign_dir, capsys):
    data = load_campaign(campaign_dir)
    path = campaign_dir / data["reproducers"][0]["reproducer"]
    assert main(["replay", str(path)]) == 1
    assert capsys.readouterr().out == json.loads(path.read_text())["kasan"]


def test_report_of_a_campaign_and_of_a_run(campaign_dir, capsys):
    assert main(["report", str(campaign_dir)]) == 0
    out = capsys.readouterr().out
    assert "cache-use-after-free [" in out and "repro    findings/01-" in out
    assert "no finding within B=1" in out
    assert main(["report", str(campaign_dir), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["findings"][0]["count"] == 1 and len(j["strategies"]) == 4
    run = next((campaign_dir / "runs").iterdir())
    assert main(["report", str(run), "kasan"]) == 0  # an ordinary results dir still works


class _Interrupting(LocalEngine):
    """Raises KeyboardInterrupt (as Ctrl-C would) once `after` runs have come back."""

    def __init__(self, after):
        super().__init__()
        self.after = after
        self.seen = 0

    def wait_any(self, timeout):
        if self.seen >= self.after:
            raise KeyboardInterrupt
        got = super().wait_any(timeout)
        self.seen += len(got)
        return got


def test_interrupted_campaign_resumes_without_redoing_runs(tmp_path):
    out = tmp_path / "c"
    c = Campaign(out, _params(minimise=False))
    assert c.execute(_Interrupting(after=1)) == 130
    kept = load_campaign(out)["runs"]
    assert 1 <= len(kept) < 4
    r = Campaign.resume(out)
    submitted = []

    class Counting(LocalEngine):
        def submit(self, spec, need):
            submitted.append(spec.id)
            return super().submit(spec, need)

    assert r.execute(Counting()) == 0
    runs = load_campaign(out)["runs"]
    assert len(runs) == 4 and not set(submitted) & {x["id"] for x in kept}
    assert [x for x in runs if x["id"] == kept[0]["id"]][0]["wall_s"] == kept[0]["wall_s"]


def test_dask_local_cluster_gives_the_same_records(tmp_path, campaign_dir):
    engine = DaskEngine(None, n_workers=2, processes=False)
    assert engine.capacity == 2
    c = Campaign(tmp_path / "d", _params(minimise=False))
    assert c.execute(engine) == 0
    assert c.data["engine"] == "dask"
    local = {r["id"]: _outcome(r) for r in load_campaign(campaign_dir)["runs"]}
    dask = {r["id"]: _outcome(r) for r in load_campaign(tmp_path / "d")["runs"]}
    assert dask == local
    for r in load_campaign(tmp_path / "d")["runs"]:
        if r["results"]:
            assert (tmp_path / "d" / r["results"] / "summary.json").is_file()


@pytest.mark.parametrize("argv, what", [
    (["--strategy", "dfs"], "--strategy"),
    (["--budget", "0"], "--budget"),
    (["--modes", "serial"], "--modes"),
    (["--faults", "preempt"], "--faults"),
    (["--policies", "v9"], "v9"),
])
def test_bad_input_is_one_line(argv, what, capsys, tmp_path):
    args = list(ARGS)
    for i in range(0, len(argv), 2):
        if argv[i] in args:
            args[args.index(argv[i]) + 1] = argv[i + 1]
        else:
            args += argv[i:i + 2]
    assert main(["stress", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and what in err


def test_unreachable_scheduler(capsys, tmp_path):
    assert main(["stress", *ARGS, "--scheduler", "tcp://127.0.0.1:9",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scheduler" in err and "127.0.0.1:9" in err
