"""A campaign: scenarios x policies x allocators x topologies x modes x strategies x seeds,
run on an engine (campaign/engine.py) under a time budget, with findings deduplicated
by signature (campaign/signature.py), a deterministic reproducer searched for each and
minimised (campaign/repro.py, campaign/minimise.py).

The campaign directory:
  campaign.json   format "slabemu-campaign", version 1: the parameters, every finished
                  run's record (its spec: parameters; its outcome: exit, time and ops to
                  its first finding, signatures, the first KASAN report), the findings;
                  rewritten atomically after every run, so a campaign killed or
                  interrupted keeps every run that finished;
  runs/<id>/      each run's results directory (as `slabemu run --out` writes it);
  findings/       <n>-<slug>.repro.json per finding with a deterministic reproducer,
                  findings.json (the table).
`--resume DIR` reloads campaign.json, checks that the parameters are the same, and runs
only the runs it does not hold.  Runs that were interrupted are not kept.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from topo import ConfigError

from .spec import MODES, RunSpec
from .strategies import STRATEGIES

FORMAT = "slabemu-campaign"
VERSION = 1


@dataclass
class Params:
    scenarios: list
    policies: list
    allocators: list = field(default_factory=lambda: ["slub"])
    topologies: list = field(default_factory=lambda: [None])
    modes: list = field(default_factory=lambda: ["parallel", "grouped", "deterministic"])
    strategies: list = field(default_factory=lambda: ["random"])
    seeds: int = 5
    ops: int | None = None
    fault_sets: list = field(default_factory=lambda: [{}])  # each over the scenario's [faults]
    kernel: str | None = None
    depth: int = 3
    bound: int = 2
    max_schedules: int = 20000
    bounded_ops: int | None = 30  # bounded runs: op budget per CPU (None: --ops)
    bounded_topology: str | None = None  # bounded runs: machine (None: the run's)
    repro_seeds: int = 20
    minimise: bool = True
    minimise_budget: float = 60.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Params":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def matrix(self) -> list[RunSpec]:
        """Every run, in the order they are submitted: seed-major, so that a budget cut
        leaves every combination with about as many seeds."""
        combos = []
        for sc, pol, alloc, topo, fs, mode in itertools.product(
                self.scenarios, self.policies, self.allocators, self.topologies,
                self.fault_sets, self.modes):
            strats = ["-"] if mode == "parallel" else [
                s for s in self.strategies if not (s == "bounded" and mode != "deterministic")]
            for strat in strats:
                combos.append((sc, pol, alloc, topo, tuple(sorted(fs.items())), mode, strat))
        out = []
        seen = set()
        for seed in range(1, self.seeds + 1):
            for sc, pol, alloc, topo, faults, mode, strat in combos:
                ops = self.ops
                if strat == "bounded":  # a systematic search: small scenarios only
                    ops = self.bounded_ops or ops
                    topo = self.bounded_topology or topo
                spec = RunSpec(scenario=sc, policy=pol, allocator=alloc, topology=topo,
                               mode=mode, strategy=strat, seed=seed, ops=ops,
                               faults=faults, kernel=self.kernel, depth=self.depth,
                               bound=self.bound, max_schedules=self.max_schedules)
                if spec.id not in seen:  # bounded runs may fold topologies into one
                    seen.add(spec.id)
                    out.append(spec)
        return out


def validate(params: Params) -> None:
    """Bad parameters fail before anything runs: one ConfigError each."""
    from ..kernel.policy import load_policy
    from .spec import build_scenario

    for m in params.modes:
        if m not in MODES:
            raise ConfigError("command line", "--modes", "parallel, grouped or deterministic", m)
    for s in params.strategies:
        if s not in STRATEGIES:
            raise ConfigError("command line", "--strategy", "random, pct or bounded", s)
    for p in params.policies:
        load_policy(p)
    seen = set()
    for spec in params.matrix():
        key = (spec.scenario, spec.policy, spec.allocator, spec.topology, spec.mode)
        if key not in seen:
            seen.add(key)
            build_scenario(spec)  # the scenario, topology and options check out


# -- the campaign file ----------------------------------------------------------------------
def load_campaign(path: Path) -> dict:
    f = Path(path) / "campaign.json"
    try:
        data = json.loads(f.read_text())
    except FileNotFoundError:
        raise ConfigError(str(f), "campaign.json", "a campaign directory (slabemu stress --out)",
                          "no campaign.json there") from None
    except (OSError, ValueError) as e:
        raise ConfigError(str(f), "campaign.json", "a campaign file written by slabemu stress",
                          f"unreadable: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(str(f), "format", f"{FORMAT!r}", repr(data.get("format")
                                                              if isinstance(data, dict) else data))
    if data.get("version") != VERSION:
        raise ConfigError(str(f), "version", str(VERSION), repr(data.get("version")))
    return data


def is_campaign_dir(path) -> bool:
    return (Path(path) / "campaign.json").is_file()


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


# -- findings -------------------------------------------------------------------------------
def aggregate(records: list[dict]) -> list[dict]:
    """Findings by signature: runs that hit it, the first hit in time and in ops, and
    under which parameters."""
    by: dict[str, dict] = {}
    for rec in records:
        for sig in rec.get("signatures") or []:
            f = by.setdefault(sig["key"], {"signature": sig, "runs": [], "params": [],
                                           "first_time": None, "first_ops": None,
                                           "deterministic_runs": []})
            f["runs"].append(rec["id"])
            spec = rec["spec"]
            p = {k: spec[k] for k in ("scenario", "policy", "allocator", "topology", "mode",
                                      "strategy")}
            if p not in f["params"]:
                f["params"].append(p)
            if spec["mode"] == "deterministic":
                f["deterministic_runs"].append(rec["id"])
            t, ops = rec.get("duration_s"), rec.get("ops")
            if t is not None and (f["first_time"] is None or t < f["first_time"]["seconds"]):
                f["first_time"] = {"seconds": t, "run": rec["id"]}
            if ops is not None and (f["first_ops"] is None or ops < f["first_ops"]["ops"]):
                f["first_ops"] = {"ops": ops, "run": rec["id"]}
    out = sorted(by.values(), key=lambda f: (-len(f["runs"]), f["signature"]["key"]))
    for f in out:
        f["count"] = len(f["runs"])
    return out


# -- progress -------------------------------------------------------------------------------
class CampaignProgress:
    """rich: runs done of all, findings so far, ETA; plain lines when not a terminal."""

    def __init__(self, total: int, quiet: bool = False):
        self.total = total
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.last = 0.0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Progress(TextColumn("[bold]campaign"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("findings {task.fields[findings]}"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task("runs", total=total, findings=0)

    def update(self, done: int, findings: int) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, findings=findings)
            return
        now = time.monotonic() - self.t0
        if now - self.last >= 2.0 or done == self.total:
            self.last = now
            eta = (now / done * (self.total - done)) if done else float("nan")
            print(f"slabemu stress: {done}/{self.total} runs, {findings} finding(s), "
                  f"{now:.0f} s, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# -- the campaign ----------------------------------------------------------------------------
class Campaign:
    def __init__(self, out: Path, params: Params, argv: list[str] | None = None,
                 quiet: bool = False):
        self.out = Path(out)
        self.params = params
        self.quiet = quiet
        self.data = {"format": FORMAT, "version": VERSION, "argv": argv or [],
                     "params": params.to_dict(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "runs": [], "findings": [], "reproducers": [], "engine": None,
                     "complete": False}

    @classmethod
    def resume(cls, out: Path, quiet: bool = False) -> "Campaign":
        data = load_campaign(out)
        c = cls(out, Params.from_dict(data["params"]), data.get("argv"), quiet)
        c.data = data
        c.data["runs"] = [r for r in data.get("runs", []) if r.get("exit") != "interrupted"]
        return c

    def save(self) -> None:
        self.data["findings"] = aggregate(self.data["runs"])
        _write_json(self.out / "campaign.json", self.data)

    def _store(self, result: dict) -> dict:
        rec = result["record"]
        rdir = self.out / "runs" / rec["id"]
        rdir.mkdir(parents=True, exist_ok=True)
        for name, blob in result["files"].items():
            (rdir / name).write_bytes(blob)
        rec["results"] = f"runs/{rec['id']}" if result["files"] else None
        return rec

    def execute(self, engine, budget: float | None = None) -> int:
        """Run every run not yet held, until done or the budget; returns the exit status
        (0, or 130 when interrupted: every finished run is kept)."""
        from topo import load_topology

        from .spec import build_scenario

        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "runs").mkdir(exist_ok=True)
        self.data["engine"] = engine.name
        done_ids = {r["id"] for r in self.data["runs"]}
        todo = [s for s in self.params.matrix() if s.id not in done_ids]
        ncpus = {}
        for s in todo:
            key = (s.scenario, s.topology)
            if key not in ncpus:
                ncpus[key] = load_topology(build_scenario(s).topology).nr_cpus
        total = len(todo) + len(done_ids)
        progress = CampaignProgress(total, self.quiet)
        t0 = time.monotonic()
        status = 0
        self.save()
        try:
            queue = list(todo)
            while queue or engine.running:
                over = budget is not None and time.monotonic() - t0 >= budget
                while queue and not over:
                    spec = queue[0]
                    need = spec.cpus_needed(ncpus[(spec.scenario, spec.topology)], engine.capacity)
                    if not engine.can_submit(need):
                        break
                    queue.pop(0)
                    engine.submit(spec, need)
                if over:
                    queue.clear()
                for spec, fut in engine.wait_any(0.2):
                    try:
                        result = fut.result()
                    except ConfigError:
                        raise
                    except Exception as e:  # a run that raised: a crash finding
                        result = {"record": {"id": spec.id, "spec": spec.to_dict(),
                                             "exit": "crashed", "error": f"{type(e).__name__}: {e}",
                                             "signatures": [{"kind": "crash", "access": "campaign-run",
                                                             "freed": "-", "flavour": "-",
                                                             "key": f"crash at campaign-run ({type(e).__name__})"}],
                                             "duration_s": None, "ops": None}, "files": {}}
                    rec = self._store(result)
                    if rec.get("exit") != "interrupted":
                        self.data["runs"].append(rec)
                        self.save()
                    progress.update(len(self.data["runs"]), len(aggregate(self.data["runs"])))
        except KeyboardInterrupt:
            status = 130
            engine.close(cancel=True)
            self.save()
            progress.close()
            return status
        finally:
            progress.close()
        engine.close()
        self.data["elapsed_s"] = round(time.monotonic() - t0, 3)
        self.save()
        return status

    def reproduce_and_minimise(self) -> None:
        """A deterministic reproducer for every KASAN finding (searched when no
        deterministic run hit it), minimised, written to findings/."""
        from .repro import find_reproducers

        (self.out / "findings").mkdir(exist_ok=True)
        self.data["reproducers"] = find_reproducers(self, quiet=self.quiet)
        self.data["complete"] = True
        self.save()
        _write_json(self.out / "findings" / "findings.json",
                    {"findings": self.data["findings"], "reproducers": self.data["reproducers"]})
