"""The slabemu command line: output, --json, exit statuses, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator import __version__
from emulator.cli import main
from tests.topo.bad_inputs import CASES, cli_args, materialise

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_synthetic(capsys):
    code, out, err = run(capsys, "topo", "show", "--synthetic", "package:2 numa:2 core:4 pu:2")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "topology: synthetic (x86_64, page size 4096, cache line 64)"
    assert "available: 4 nodes (0-3)" in lines
    assert "node 3 cpus: " + " ".join(str(c) for c in range(24, 32)) in lines
    assert "node 0 size: 256 MiB" in lines
    assert "node   0   1   2   3" in lines and "  2:  20  20  10  20" in lines
    assert lines[-1] == "packages: 2, cores: 16, threads per core: 2, cpus: 32"


def test_show_config_and_memoryless(capsys):
    code, out, _ = run(capsys, "topo", "show", "threadripper-3960x-nps4")
    assert code == 0
    assert "node 0 size: 0 MiB" in out and "node 1 size: 256 MiB" in out
    assert "  0:  10  12  12  12" in out


def test_show_json(capsys):
    code, out, err = run(capsys, "topo", "show", "xeon-2s12c", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    assert set(d) == {"name", "arch", "page_size", "cache_line", "nodes", "distances", "cpus"}
    assert d["name"] == "xeon-2s12c" and len(d["cpus"]) == 48 and d["distances"][0] == [10, 21]


def test_show_numactl_and_memory_cap(capsys):
    code, out, _ = run(capsys, "topo", "show", "--numactl", str(DATA / "numactl-xeon-2s12c.txt"),
                       "--memory-cap", "256MiB", "--json")
    assert code == 0
    d = json.loads(out)
    assert sum(n["memory"] for n in d["nodes"]) <= 256 << 20 and len(d["cpus"]) == 48


def test_show_host(capsys):
    code, out, _ = run(capsys, "topo", "show", "host")
    assert code == 0 and out.startswith("topology: host (")


def test_place(capsys):
    code, out, err = run(capsys, "topo", "place", "--synthetic", "core:4 pu:1", "--placement",
                         "0:0,1:0,2:0,3:0")
    assert code == 0 and err == ""
    assert "cpu 2 (node 0) -> host cpu 0" in out
    assert "oversubscribed: 4 emulated CPUs on 1 host CPUs (4.0x, up to 4 on one)" in out


def test_place_default_and_oversubscription_line(capsys):
    ncpus = len(os.sched_getaffinity(0))
    code, out, _ = run(capsys, "topo", "place", "--synthetic", "package:2 numa:2 core:4 pu:2")
    assert code == 0
    first = min(os.sched_getaffinity(0))
    assert f"cpu 0 (node 0) -> host cpu {first}" in out
    assert sum(1 for line in out.splitlines() if line.startswith("cpu ")) == 32
    if ncpus < 32:
        assert f"oversubscribed: 32 emulated CPUs on {ncpus} host CPUs ({32 / ncpus:.1f}x" in out
    else:
        assert "oversubscribed" not in out


def test_place_json(capsys):
    code, out, _ = run(capsys, "topo", "place", "laptop-1n8c", "--placement", "scatter", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["topology"] == "laptop-1n8c" and d["policy"] == "scatter"
    assert [m["cpu"] for m in d["map"]] == list(range(8)) and {m["node"] for m in d["map"]} == {0}
    assert set(m["host_cpu"] for m in d["map"]) <= set(os.sched_getaffinity(0))
    assert d["oversubscription"] >= 1.0


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"slabemu {__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["topo", "--help"], ["topo", "show", "--help"],
                                  ["topo", "place", "--help"]])
def test_help(capsys, argv):
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "usage: slabemu" in out


@pytest.mark.parametrize("argv, fragment", [
    ([], "a subcommand is required"),
    (["topo"], "a subcommand is required"),
    (["topo", "show"], "expected exactly one of TOPOLOGY, --synthetic STR or --numactl FILE"),
    (["topo", "show", "laptop-1n8c", "--synthetic", "pu:1"], "got 'TOPOLOGY and --synthetic'"),
    (["topo", "show", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("slabemu: error: ") and fragment in err


@pytest.mark.parametrize("case_id, files, kwargs, placement, fragment", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_in_process(capsys, tmp_path, case_id, files, kwargs, placement, fragment):
    args = cli_args(materialise(files, kwargs, tmp_path), placement)
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("slabemu: error: ")
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("case_id", ["toml-syntax", "synthetic-type", "numactl-no-available",
                                     "unknown-name", "placement-map"])
def test_bad_input_subprocess(tmp_path, case_id):
    _, files, kwargs, placement, fragment = next(c for c in CASES if c[0] == case_id)
    args = cli_args(materialise(files, kwargs, tmp_path), placement)
    proc = subprocess.run([sys.executable, "-m", "emulator.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert fragment in proc.stderr


def test_console_script_and_stdin(tmp_path):
    exe = Path(sys.executable).with_name("slabemu")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "emulator.cli"]
    proc = subprocess.run(cmd + ["topo", "show", "--numactl", "-"], cwd=REPO, text=True,
                          input=(DATA / "numactl-epyc7551-memoryless.txt").read_text(),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "available: 8 nodes (0-7)" in proc.stdout and "node 0 size: 0 MiB" in proc.stdout
    bad = subprocess.run(cmd + ["topo", "show", "--synthetic", "pack:x"], cwd=REPO, text=True,
                         capture_output=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_keyboard_interrupt(capsys, monkeypatch):
    import emulator.cli as cli

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_topology", boom)
    code, _, err = run(capsys, "topo", "show", "laptop-1n8c")
    assert code == 130 and "interrupted" in err


# -- slabemu caches ------------------------------------------------------------------------------

SLABINFO_HEADER = [
    "slabinfo - version: 2.1",
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
    " : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs>"
    " <sharedavail>",
]


def test_caches_slub_xeon(capsys):
    code, out, err = run(capsys, "caches", "xeon-2s12c")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[:2] == SLABINFO_HEADER
    # 48 CPUs: min_objects = 4 * (fls(48) + 1) = 4 * 7 = 28; 28 * 512 = 14336 B ->
    # get_order = 2, and 16384 % 512 == 0: 32 objects in a 4-page slab
    assert ("kmalloc-512            0      0    512   32    4 : tunables    0    0    0"
            " : slabdata      0      0      0") in lines
    # newest first: the kmalloc caches, then kmem_cache_node, then kmem_cache
    # (2 nodes: 192 + 2 * 8 = 208 -> 256 by SLAB_HWCACHE_ALIGN; 28 * 256 = 7168 -> order 1)
    assert lines[2].startswith("kmalloc-8192 ")
    assert lines[-2].startswith("kmem_cache_node ")
    assert lines[-1] == ("kmem_cache             0      0    256   32    2 : tunables    0"
                         "    0    0 : slabdata      0      0      0")


def test_caches_json(capsys):
    code, out, err = run(capsys, "caches", "xeon-2s12c", "--json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    by = {r["name"]: r for r in rows}
    k512 = by["kmalloc-512"]
    assert (k512["objperslab"], k512["pagesperslab"], k512["memcg"], k512["dead"]) == (
        32, 4, None, False)
    assert k512["geometry"]["order"] == 2 and k512["geometry"]["objects"] == 32
    assert k512["geometry"]["allocator"] == "slub" and k512["geometry"]["cpu_partial"] == 13


def test_caches_slab(capsys):
    code, out, err = run(capsys, "caches", "--synthetic", "package:2 core:4 pu:2",
                         "--allocator", "slab")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[:2] == SLABINFO_HEADER
    assert lines[2].startswith("kmalloc-4194304 ") and lines[-1].startswith("kmem_cache ")
    # kmalloc-32 (kmalloc-ac): 4096 / 33 = 124 objects; tunables 120 60 8 (16 CPUs)
    assert ("kmalloc-32             0      0     32  124    1 : tunables  120   60    8"
            " : slabdata      0      0      0") in lines


@pytest.mark.parametrize("argv, fragment", [
    (["caches", "laptop-1n8c", "--allocator", "slob"], "invalid choice: 'slob'"),
    (["caches"], "expected exactly one of TOPOLOGY"),
])
def test_caches_errors(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("slabemu: error: ") and fragment in err


def test_caches_help(capsys):
    code, out, _ = run(capsys, "caches", "--help")
    assert code == 0 and "usage: slabemu caches" in out and "--allocator" in out


# -- slabemu caches --scenario: SLUB merging (kernel/merge.py) ----------------------------------

def _lines_by_name(out):
    body = out.split("\n\n")[0].splitlines()[2:]
    return {line.split()[0]: line for line in body}


def test_caches_scenario_merges_dentry_like(capsys):
    code, out, err = run(capsys, "caches", "--scenario", "memcg-churn")
    assert code == 0 and err == ""
    lines = _lines_by_name(out)
    assert out.splitlines()[:2] == SLABINFO_HEADER
    # dentry_like (192 B, align 8, no ctor) is an alias of kmalloc-192: no line of its own
    assert "dentry_like" not in lines and "kmalloc-192" in lines
    # big_obj (20000 B) matches no cache: its own line, newest first (created last)
    assert out.splitlines()[2].startswith("big_obj ")
    # the alias section, as tools/vm/slabinfo -a prints it ("%-12s <- %s")
    assert out.endswith("\n\nkmalloc-192  <- dentry_like\n")
    # every boot cache keeps the line (and so the geometry) it has without the scenario
    code, boot, _ = run(capsys, "caches", "twonode-2n4c")
    boot_lines = _lines_by_name(boot)
    assert {n: lines[n] for n in boot_lines} == boot_lines
    assert set(lines) == set(boot_lines) | {"big_obj"}


def test_caches_scenario_json(capsys):
    code, out, err = run(capsys, "caches", "--scenario", "memcg-churn", "--json")
    assert code == 0 and err == ""
    by = {r["name"]: r for r in json.loads(out)}
    assert "dentry_like" not in by
    assert by["kmalloc-192"]["aliases"] == ["dentry_like"] and by["kmalloc-192"]["refcount"] == 2
    assert by["big_obj"]["aliases"] == [] and by["big_obj"]["refcount"] == 1
    assert by["kmalloc-64"]["refcount"] == 1
    # create_boot_cache(): exempt from merging
    assert by["kmem_cache"]["refcount"] == -1 and by["kmem_cache_node"]["refcount"] == -1
    assert by["kmalloc-192"]["geometry"]["size"] == 192


@pytest.mark.parametrize("how", [["--slab-nomerge"], ["--allocator", "slab"]])
def test_caches_scenario_unmerged(capsys, tmp_path, how):
    """slub_nomerge (flag) and SLAB (whose 3.16 __kmem_cache_alias is NULL): dentry_like
    gets a line of its own, with its own geometry."""
    code, out, err = run(capsys, "caches", "--scenario", "memcg-churn", *how)
    assert code == 0 and err == ""
    lines = _lines_by_name(out)
    assert "dentry_like" in lines and "<-" not in out
    assert lines["dentry_like"].split()[1:] == lines["kmalloc-192"].split()[1:]
    assert out.splitlines()[2].startswith("big_obj ") and out.splitlines()[3].startswith(
        "dentry_like ")


def test_caches_scenario_kernel_nomerge(capsys, tmp_path):
    """[kernel] slab_nomerge = true in the scenario file does what --slab-nomerge does."""
    src = (REPO / "configs" / "scenarios" / "memcg-churn.toml").read_text()
    assert "[kernel]" not in src
    f = tmp_path / "nomerge.toml"
    f.write_text(src + "\n[kernel]\nslab_nomerge = true\n")
    code, out, err = run(capsys, "caches", "--scenario", str(f), "--json")
    assert code == 0 and err == ""
    by = {r["name"]: r for r in json.loads(out)}
    assert by["dentry_like"]["refcount"] == 1 and by["kmalloc-192"]["aliases"] == []
    assert by["dentry_like"]["geometry"]["size"] == 192


@pytest.mark.parametrize("argv, fragment", [
    (["caches", "--scenario", "no-such-scenario"], "no-such-scenario"),
    (["caches", "--scenario", "memcg-churn", "--synthetic", "package:1 core:2",
      "laptop-1n8c"], "expected exactly one of TOPOLOGY"),
])
def test_caches_scenario_errors(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("slabemu: error: ") and fragment in err
