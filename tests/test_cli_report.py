"""`slabemu report DIR [VIEW] [--json] [--per-node]`: every view, JSON, bad directories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.report.kasan import format_kasan
from emulator.report.leaks import format_leaks
from emulator.report.lockstat import format_lock_stat, parse_lock_stat
from emulator.report.slabinfo import parse_slabinfo
from emulator.report.summary import format_summary
from tests.emulator.report.summary_example import EXAMPLE, example_summary, write_results

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def results(tmp_path):
    return write_results(tmp_path / "run")


def test_default_view_is_the_summary(capsys, results):
    code, out, err = run(capsys, "report", results)
    assert code == 0 and err == ""
    assert out == format_summary(EXAMPLE)
    assert out.startswith("scenario   memcg-churn (seed 42, deterministic mode")
    assert run(capsys, "report", results, "summary")[1] == out


def test_slabinfo_view(capsys, results):
    code, out, err = run(capsys, "report", results, "slabinfo")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "slabinfo - version: 2.1"
    assert lines[2] == ("kmalloc-64(2:m1)      10     64     64   64    1 : tunables    0    0"
                        "    0 : slabdata      1      1      0 : dead")
    rows = parse_slabinfo(out)
    assert [r["name"] for r in rows] == [c["name"] for c in EXAMPLE["caches"]]
    assert [r["dead"] for r in rows] == [True, False, False, False]


def test_slabinfo_view_takes_nested_or_flat_tunables(capsys, tmp_path):
    s = example_summary()
    s["caches"][1]["tunables"] = {"limit": 120, "batchcount": 60, "sharedfactor": 8}
    s["caches"][2].pop("tunables")
    s["caches"][2].update(limit=54, batchcount=27, sharedfactor=8, sharedavail=5)
    code, out, _ = run(capsys, "report", write_results(tmp_path, s), "slabinfo")
    rows = parse_slabinfo(out)
    assert (rows[1]["limit"], rows[1]["batchcount"], rows[1]["sharedfactor"]) == (120, 60, 8)
    assert (rows[2]["limit"], rows[2]["sharedavail"]) == (54, 5)


def test_lockstat_views(capsys, results):
    code, out, err = run(capsys, "report", results, "lockstat")
    assert code == 0 and err == "" and out == format_lock_stat(EXAMPLE["locks"])
    assert [r["cache"] for r in parse_lock_stat(out)][:2] == ["kmalloc-64", "kmalloc-256"]
    code, out, _ = run(capsys, "report", results, "lockstat", "--per-node")
    assert code == 0 and out == format_lock_stat(EXAMPLE["locks"], per_node=True)
    assert "&n->list_lock/0:" in out and "kmalloc-64:" not in out


def test_kasan_and_leaks_views(capsys, results):
    code, out, _ = run(capsys, "report", results, "kasan")
    assert code == 0 and out == format_kasan(EXAMPLE["kasan"], 5)
    code, out, _ = run(capsys, "report", results, "leaks")
    assert code == 0 and out == format_leaks(EXAMPLE["leaks"])


def test_kasan_view_without_reports(capsys, tmp_path):
    d = write_results(tmp_path, example_summary(kasan=[], kasan_total=0))
    assert run(capsys, "report", d, "kasan") == (0, "no KASAN reports\n", "")


@pytest.mark.parametrize("view, want", [
    ([], EXAMPLE), (["summary"], EXAMPLE), (["slabinfo"], EXAMPLE["caches"]),
    (["lockstat"], EXAMPLE["locks"]), (["kasan"], EXAMPLE["kasan"]),
    (["leaks"], EXAMPLE["leaks"]),
])
def test_json_views(capsys, results, view, want):
    code, out, err = run(capsys, "report", results, *view, "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == want


def test_json_per_node_lockstat(capsys, results):
    code, out, _ = run(capsys, "report", results, "lockstat", "--per-node", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["name"], r["node"]) for r in rows] == [
        ("&n->list_lock", 0), ("&n->list_lock", 1), ("&zone->lock", 0)]
    assert rows[0]["contentions"] == 15 and rows[0]["cache"] is None


def _one_line_error(code, out, err):
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("slabemu: error: ")
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("case, fragment", [
    ("missing", "results directory: expected a directory written by 'slabemu run --out', "
                "got 'no such path'"),
    ("file", "got 'not a directory'"),
    ("empty", "summary.json: summary.json: expected the run's summary, a JSON file, got "
              "'no such file'"),
    ("bad-json", "summary.json: line 1 column 2: expected valid JSON"),
    ("array", "summary.json: (top level): expected a JSON object, got 'an array'"),
    ("schema-2", "summary.json: schema: expected 1 (this slabemu reads summary schema 1), got 2"),
    ("missing-key", "summary.json: leaks: expected an object (the key is missing)"),
    ("wrong-type", "summary.json: caches[0].num_objs: expected an integer, got '64'"),
])
@pytest.mark.parametrize("view", [[], ["slabinfo", "--json"]])
def test_bad_results_directories(capsys, tmp_path, case, fragment, view):
    d = tmp_path / "run"
    if case == "file":
        d.write_text("{}")
    elif case == "empty":
        d.mkdir()
    elif case == "bad-json":
        write_results(d, text="{oops")
    elif case == "array":
        write_results(d, text="[]")
    elif case == "schema-2":
        write_results(d, example_summary(schema=2))
    elif case == "missing-key":
        s = example_summary()
        del s["leaks"]
        write_results(d, s)
    elif case == "wrong-type":
        s = example_summary()
        s["caches"][0]["num_objs"] = "64"
        write_results(d, s)
    err = _one_line_error(*run(capsys, "report", d, *view))
    assert fragment in err and str(d) in err


@pytest.mark.parametrize("argv, fragment", [
    (["report"], "the following arguments are required: DIR"),
    (["report", "DIR", "frobs"], "invalid choice: 'frobs'"),
    (["report", "DIR", "summary", "--per-node"], "--per-node applies to the lockstat view"),
    (["report", "DIR", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_usage_errors(capsys, tmp_path, argv, fragment):
    write_results(tmp_path / "DIR")
    argv = [str(tmp_path / a) if a == "DIR" else a for a in argv]
    err = _one_line_error(*run(capsys, *argv))
    assert fragment in err


def test_help(capsys):
    code, out, _ = run(capsys, "report", "--help")
    assert code == 0 and "usage: slabemu report" in out and "--per-node" in out


def test_subprocess(tmp_path):
    d = write_results(tmp_path / "run")
    ok = subprocess.run([sys.executable, "-m", "emulator.cli", "report", str(d), "leaks",
                         "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and json.loads(ok.stdout) == EXAMPLE["leaks"]
    bad = subprocess.run([sys.executable, "-m", "emulator.cli", "report", str(tmp_path / "no")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr
