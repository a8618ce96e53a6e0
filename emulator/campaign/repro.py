"""Reproducers: a finding's deterministic run, saved as a file that `slabemu replay` reruns.

The file (JSON, format "slabemu-repro", version 1) holds everything the run needs and
nothing that depends on the checkout's configs beyond topology and kernel preset names:
  signature        the finding (campaign/signature.py)
  scenario         {name, toml}: the scenario file's text, so that the file stands alone
  spec             the run's parameters (RunSpec: policy, allocator, topology, seed, ops
                   per CPU, faults, kernel build), deterministic mode
  strategy         how the schedule was found (random, pct with d/k, bounded, minimised)
  schedule         the CPU index of every step (+ the number of CPUs where the bounded
                   search preempted that CPU's task before the step), int32
                   little-endian, zlib, base64; it ends at the bad access
  steps            its length
  kasan            the KASAN report text the replay must print, byte for byte
  size             {original, minimal}: CPUs, ops per CPU, steps, memcgs created
  found_by         the campaign run it comes from, or the search that found it

A parallel-mode finding has no schedule to save: the campaign searches deterministic
mode (seeds x strategies, same scenario and policy) for a run with the same signature.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from topo import ConfigError

from .signature import run_signatures
from .spec import RunSpec, build_scenario

FORMAT = "slabemu-repro"
VERSION = 1
KASAN_KINDS = ("cache-use-after-free", "object-use-after-free", "double-free", "invalid-free",
               "out-of-bounds")


def encode_schedule(schedule) -> str:
    a = np.asarray(schedule, dtype="<i4")
    return base64.b64encode(zlib.compress(a.tobytes(), 9)).decode("ascii")


def decode_schedule(text: str) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    if len(raw) % 4:
        raise ValueError("the schedule is not a whole number of int32 steps")
    return np.frombuffer(raw, dtype="<i4").astype(np.int64)


def load_repro(path) -> dict:
    """Read and check a reproducer file: one ConfigError naming the file and the field."""
    path = Path(path)
    src = str(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(src, "file", "a reproducer file (findings/*.repro.json)",
                          "no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(src, "file", "a reproducer file (JSON, format slabemu-repro)",
                          f"unreadable: {str(e).splitlines()[0][:80]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(src, "format", f"{FORMAT!r}", repr(got))
    if data.get("version") != VERSION:
        raise ConfigError(src, "version", f"{VERSION} (this slabemu's reproducer format)",
                          repr(data.get("version")))
    for key, kind in (("signature", dict), ("scenario", dict), ("spec", dict),
                      ("schedule", str), ("kasan", str), ("steps", int)):
        if not isinstance(data.get(key), kind):
            raise ConfigError(src, key, f"a {kind.__name__}", repr(data.get(key))[:60])
    sc = data["scenario"]
    if not isinstance(sc.get("name"), str) or not isinstance(sc.get("toml"), str) \
            or not re.fullmatch(r"[A-Za-z0-9_.-]+", sc["name"]):
        raise ConfigError(src, "scenario", "{name, toml} of the scenario", repr(sc)[:60])
    try:
        sched = decode_schedule(data["schedule"])
    except (ValueError, zlib.error) as e:
        raise ConfigError(src, "schedule", "base64 of zlib-compressed int32 steps",
                          f"corrupt ({e})") from None
    if len(sched) != data["steps"]:
        raise ConfigError(src, "steps", f"the schedule's length ({len(sched)})", data["steps"])
    try:
        RunSpec.from_dict({**data["spec"], "scenario": sc["name"]})
    except TypeError as e:
        raise ConfigError(src, "spec", "a run's parameters", str(e)) from None
    data["_schedule"] = sched
    return data


class ScenarioFile:
    """The reproducer's scenario written out to a temporary file while it is used."""

    def __init__(self, repro: dict):
        self._d = tempfile.TemporaryDirectory(prefix="slabemu-repro-")
        self.path = Path(self._d.name) / f"{repro['scenario']['name']}.toml"
        self.path.write_text(repro["scenario"]["toml"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._d.cleanup()


def repro_spec(repro: dict, scenario_path: Path) -> RunSpec:
    return RunSpec.from_dict({**repro["spec"], "scenario": str(scenario_path)})


def replay(repro: dict, out: str | None = None, trace: bool = False):
    """Rerun a reproducer through the runner (deterministic mode, the recorded schedule).
    Returns (summary, kasan text, trace lines or None)."""
    from ..run.runner import RunOptions, run_scenario
    from .strategies import Strategy

    with ScenarioFile(repro) as f:
        spec = repro_spec(repro, f.path)
        try:
            sc = build_scenario(spec)
        except ConfigError as e:
            raise ConfigError(str(repro.get("_path", "reproducer")), "spec",
                              "parameters this checkout can run", str(e)) from None
        lines = None
        if trace:
            from .trace import trace_schedule

            lines = trace_schedule(sc, repro["_schedule"])
        with tempfile.TemporaryDirectory(prefix="slabemu-replay-") as d:
            res = run_scenario(sc, RunOptions(out=out or str(Path(d) / "r"), stop_on_error=True,
                                              progress=False, quiet=True,
                                              scheduler=Strategy("replay", replay=repro["_schedule"])))
            kasan = (res.out / "kasan.txt").read_text()
    return res.summary, kasan, lines


def scenario_text(name_or_path: str) -> tuple[str, str]:
    from ..workload.scenario import load_scenario

    sc = load_scenario(name_or_path)
    return sc.name, Path(sc.path).read_text()


def make_repro(spec: RunSpec, schedule, signature: dict, strategy: dict, found_by: dict,
               size: dict) -> dict:
    name, toml = scenario_text(spec.scenario)
    d = spec.to_dict()
    d.pop("scenario")
    d.pop("id")
    d["mode"] = "deterministic"
    return {"format": FORMAT, "version": VERSION, "signature": signature,
            "scenario": {"name": name, "toml": toml}, "spec": d, "strategy": strategy,
            "schedule": encode_schedule(schedule), "steps": int(len(schedule)), "kasan": "",
            "size": size, "found_by": found_by}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _search(spec: RunSpec, key: str, seeds: int, deadline: float):
    """Deterministic runs of the spec's scenario and policy (seeds x random, pct) until
    one gives the signature `key`: (spec, outcome) or None."""
    from .explore import Machine
    from .strategies import Strategy, pct_steps_estimate

    for seed in range(1, seeds + 1):
        s = dataclasses.replace(spec, mode="deterministic", strategy="random", seed=seed)
        sc = build_scenario(s)
        with Machine(sc) as m:
            for strat in ("random", "pct"):
                st = Strategy(strat, depth=spec.depth,
                              steps=pct_steps_estimate(sc.ops_per_cpu, m.nr_cpus))
                out = m.run(st)
                if out.signature and out.signature["key"] == key:
                    return dataclasses.replace(s, strategy=strat), out
                if time.monotonic() > deadline:
                    return None
    return None


def find_reproducers(campaign, quiet: bool = False) -> list[dict]:
    """For every KASAN finding of the campaign: its reproducer file (from a deterministic
    run that hit it, or searched), minimised; or a line saying there is none."""
    from .minimise import minimise, size_of

    params = campaign.params
    out = []
    recs = {r["id"]: r for r in campaign.data["runs"]}
    for n, f in enumerate(campaign.data["findings"], 1):
        sig = f["signature"]
        entry = {"finding": sig["key"], "count": f["count"]}
        if sig["kind"] not in KASAN_KINDS:
            entry.update(reproducer=None, why="not a KASAN report: rerun a deterministic run "
                         "that hit it by its seed" if f["deterministic_runs"] else
                         "not a KASAN report, and no deterministic run hit it",
                         runs=f["runs"][:20])
            out.append(entry)
            continue
        if not quiet:
            print(f"slabemu stress: reproducer for {sig['key']}", file=__import__("sys").stderr)
        t0 = time.monotonic()
        found = None
        det = [recs[i] for i in f["deterministic_runs"] if recs[i].get("steps")]
        if det:
            rec = min(det, key=lambda r: r["steps"])
            spec = RunSpec.from_dict(rec["spec"])
            sched = np.fromfile(campaign.out / rec["results"] / "schedule.bin", dtype="<i4")
            found = (spec, sched.astype(np.int64), {"run": rec["id"]},
                     {"name": spec.strategy, "depth": spec.depth})
        else:
            first = RunSpec.from_dict(recs[f["runs"][0]]["spec"])
            hit = _search(first, sig["key"], params.repro_seeds,
                          time.monotonic() + max(30.0, params.minimise_budget))
            if hit is not None:
                spec, outc = hit
                found = (spec, outc.schedule, {"search": "deterministic seeds x (random, pct)",
                                                "seed": spec.seed},
                         {"name": spec.strategy, "depth": spec.depth})
        if found is None:
            entry.update(reproducer=None, why="no deterministic run found with this signature",
                         parallel_runs=f["runs"][:20])
            out.append(entry)
            continue
        spec, sched, found_by, strategy = found
        original = size_of(spec, sched)
        minimal_spec, minimal_sched, mlog = spec, sched, []
        if params.minimise:
            minimal_spec, minimal_sched, mlog = minimise(spec, sched, sig["key"],
                                                         params.minimise_budget)
        repro = make_repro(minimal_spec, minimal_sched, sig,
                           {**strategy, "minimised": params.minimise},
                           found_by, {"original": original,
                                      "minimal": size_of(minimal_spec, minimal_sched)})
        repro["_schedule"] = minimal_sched
        summary, kasan, _ = replay(repro)
        got = run_signatures(summary)
        if not got or got[0]["key"] != sig["key"]:  # never expected: the runner disagrees
            entry.update(reproducer=None, why="the runner's replay did not reproduce it")
            out.append(entry)
            continue
        repro["kasan"] = kasan
        repro.pop("_schedule")
        path = campaign.out / "findings" / f"{n:02d}-{_slug(sig['kind'] + '-' + sig['flavour'])}.repro.json"
        path.write_text(json.dumps(repro, indent=2) + "\n")
        entry.update(reproducer=str(path.relative_to(campaign.out)), found_by=found_by,
                     size=repro["size"], minimise_log=mlog,
                     seconds=round(time.monotonic() - t0, 3))
        out.append(entry)
    return out
