"""The campaign's commands: `slabemu stress` and `slabemu replay` (registered in cli.py's
COMMANDS), and `slabemu report CAMPAIGN` (cli.py's report hands a campaign directory
here).  Argument parsing only; the work is in campaign.py, repro.py and trace.py.
Bad input is one ConfigError or UsageError line, exit status 2 (cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from topo import ConfigError

from ..cli import _int_at_least, _positive_float  # the run options' argument types


def _list(opt: str, text: str | None, default: list) -> list:
    if text is None:
        return list(default)
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ConfigError("command line", opt, "a comma-separated list", repr(text))
    if len(set(items)) != len(items):
        raise ConfigError("command line", opt, "each value once", repr(text))
    return items


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def _fault_sets(text: str | None) -> list[dict]:
    """--faults "preempt=0,race_delay=0;preempt=0.5,race_delay=0": each set is a campaign
    dimension value; "scenario" keeps the scenario's [faults]."""
    from ..workload.scenario import Faults

    if text is None:
        return [{}]
    out = []
    fields = {f for f in Faults.__dataclass_fields__}
    for part in text.split(";"):
        part = part.strip()
        if part in ("", "scenario"):
            out.append({})
            continue
        d = {}
        for item in part.split(","):
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq or name not in fields:
                raise ConfigError("command line", "--faults",
                                  f"NAME=VALUE with NAME one of {', '.join(sorted(fields))}",
                                  repr(item))
            try:
                d[name] = _number(value.strip())
            except ValueError:
                raise ConfigError("command line", "--faults", f"a number for {name}",
                                  repr(value)) from None
        out.append(d)
    return out


def cmd_stress(args: argparse.Namespace) -> int:
    from ..run.runner import prepare_out
    from ..run.warmup import warm_up
    from .campaign import Campaign, Params, validate
    from .report import format_campaign

    if args.budget is not None and not args.budget > 0:
        raise ConfigError("command line", "--budget", "a positive number of seconds",
                          repr(args.budget))
    if args.resume:
        if args.scenarios:
            raise ConfigError("command line", "--resume", "no SCENARIO (the campaign's own are "
                              "used)", " ".join(args.scenarios))
        camp = Campaign.resume(Path(args.resume), quiet=args.no_progress or args.json)
    else:
        if not args.scenarios:
            raise ConfigError("command line", "SCENARIO", "at least one scenario", "none")
        if not args.policies:
            raise ConfigError("command line", "--policies", "at least one policy", "none")
        strategies = _list("--strategy", args.strategy, ["random"])
        params = Params(
            scenarios=list(args.scenarios), policies=_list("--policies", args.policies, []),
            allocators=_list("--allocators", args.allocators, ["slub"]),
            topologies=_list("--topologies", args.topologies, [None]),
            modes=_list("--modes", args.modes, ["parallel", "grouped", "deterministic"]),
            strategies=strategies, seeds=args.seeds, ops=args.ops,
            fault_sets=_fault_sets(args.faults), kernel=args.config, depth=args.depth,
            bound=args.bound, max_schedules=args.max_schedules, repro_seeds=args.repro_seeds,
            bounded_ops=args.bounded_ops, bounded_topology=args.bounded_topology,
            minimise=not args.no_minimise, minimise_budget=args.minimise_budget)
        validate(params)
        out = prepare_out(args.out, f"stress-{Path(args.scenarios[0]).stem}")
        camp = Campaign(out, params, argv=sys.argv[1:], quiet=args.no_progress or args.json)
    engine = _engine(args)
    warm_up(allocators=tuple(camp.params.allocators), quiet=args.no_progress or args.json,
            campaign=True)
    status = camp.execute(engine, budget=args.budget)
    if status == 0:
        camp.reproduce_and_minimise()
    if args.json:
        print(json.dumps(camp.data, indent=2))
    else:
        print(format_campaign(camp.data) + f"campaign: {camp.out}")
    if status == 130:
        print(f"slabemu: interrupted: {len(camp.data['runs'])} runs kept; resume with "
              f"'slabemu stress --resume {camp.out}'", file=sys.stderr)
    return status


def _engine(args):
    from .engine import DaskEngine, LocalEngine

    if args.scheduler:
        return DaskEngine(args.scheduler)
    if args.engine == "dask":
        return DaskEngine(None)
    return LocalEngine()


def add_stress(sub) -> None:
    p = sub.add_parser(
        "stress", help="a campaign: many runs looking for findings, deduplicated, reproduced",
        description="Run scenarios x policies x allocators x topologies x fault sets x modes "
                    "x strategies x seeds (each run stopping at its first KASAN report), "
                    "group the findings by signature, find a deterministic reproducer for "
                    "each and minimise it.  Writes a campaign directory (campaign.json, "
                    "runs/, findings/).  Exit status: 0 done, 2 bad input, 130 interrupted "
                    "(resume with --resume DIR).  docs/campaigns.md.")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    p.add_argument("--policies", metavar="P,...")
    p.add_argument("--allocators", metavar="A,...", help="slub,slab (default slub)")
    p.add_argument("--topologies", metavar="T,...", help="default: each scenario's")
    p.add_argument("--modes", metavar="M,...",
                   help="parallel,grouped,deterministic (default all three)")
    p.add_argument("--strategy", metavar="S,...",
                   help="random,pct,bounded for grouped and deterministic runs (default random; "
                        "bounded: deterministic only)")
    p.add_argument("--seeds", type=_int_at_least(1), default=5, metavar="N")
    p.add_argument("--ops", type=_int_at_least(1), metavar="N_PER_CPU",
                   help="op budget per CPU (default: the scenario's)")
    p.add_argument("--faults", metavar="SETS",
                   help='fault sets, a dimension: "preempt=0,race_delay=0;preempt=0.5" '
                        '("scenario": its own [faults]; default)')
    p.add_argument("--config", metavar="K", help="the kernel build (a preset in configs/kernels)")
    p.add_argument("--depth", type=_int_at_least(1), default=3, metavar="D", help="pct: d (3)")
    p.add_argument("--bound", type=_int_at_least(0), default=2, metavar="B",
                   help="bounded: preemptions (2)")
    p.add_argument("--max-schedules", type=_int_at_least(1), default=20000, metavar="N",
                   help="bounded: stop a search after N schedules (20000)")
    p.add_argument("--bounded-ops", type=_int_at_least(1), default=30, metavar="N_PER_CPU",
                   help="bounded: op budget per CPU of its runs (30; the search is exhaustive)")
    p.add_argument("--bounded-topology", metavar="T",
                   help="bounded: the machine of its runs (default: the run's), e.g. twonode-2n2c")
    p.add_argument("--budget", type=float, metavar="SECONDS",
                   help="stop starting runs after this long (default: run them all)")
    p.add_argument("--repro-seeds", type=_int_at_least(1), default=20, metavar="N",
                   help="deterministic seeds tried for a reproducer (20)")
    p.add_argument("--no-minimise", action="store_true")
    p.add_argument("--minimise-budget", type=_positive_float, default=60.0, metavar="SECONDS",
                   help="per finding (60)")
    p.add_argument("--out", metavar="DIR", help="default results/<time>-stress-<scenario>/")
    p.add_argument("--resume", metavar="DIR", help="finish an interrupted campaign")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: a process pool on this host (default); dask: an embedded "
                        "LocalCluster")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster (tcp://host:8786)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print campaign.json only")
    p.set_defaults(func=cmd_stress)


def cmd_replay(args: argparse.Namespace) -> int:
    from ..run.warmup import warm_up
    from .repro import load_repro, replay
    from .signature import run_signatures

    repro = load_repro(args.repro)
    repro["_path"] = args.repro
    warm_up(allocators=(repro["spec"].get("allocator", "slub"),), quiet=True, campaign=True)
    summary, kasan, lines = replay(repro, trace=args.trace)
    if lines:
        print("\n".join(lines))
        print()
    sys.stdout.write(kasan)
    sigs = run_signatures(summary)
    if sigs and sigs[0]["key"] == repro["signature"]["key"]:
        if kasan != repro["kasan"]:
            print("slabemu: replay: the same finding, but its KASAN report differs from the "
                  "recorded one", file=sys.stderr)
            return 3
        return 1
    print(f"slabemu: replay: did not reproduce {repro['signature']['key']}", file=sys.stderr)
    return 3


def add_replay(sub) -> None:
    p = sub.add_parser(
        "replay", help="rerun a reproducer and print its KASAN report",
        description="Rerun a campaign's reproducer (findings/*.repro.json) in deterministic "
                    "mode on its recorded schedule and print the KASAN report, byte for byte "
                    "as recorded.  Exit status: 1 reproduced (a kernel bug), 3 not reproduced "
                    "or a different report, 2 bad input.")
    p.add_argument("repro", metavar="REPRO")
    p.add_argument("--trace", action="store_true",
                   help="first print the interleaving: one column per CPU, ending at the bad access")
    p.set_defaults(func=cmd_replay)


def report_campaign(path: str, as_json: bool) -> int:
    from .campaign import load_campaign
    from .report import format_campaign, strategy_rows

    data = load_campaign(Path(path))
    if as_json:
        print(json.dumps({"findings": data.get("findings"), "reproducers": data.get("reproducers"),
                          "strategies": strategy_rows(data.get("runs") or [])}, indent=2))
    else:
        print(format_campaign(data), end="")
    return 0
