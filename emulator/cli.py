"""The ``slabemu`` command line: thin argument parsing over the library.

Models the command line of docs/design.md §12: ``slabemu topo show``, ``topo place``,
``caches``, ``run``, ``compare`` and ``report``.  Each is one entry in `COMMANDS` (an
``add_*`` function that registers a sub-parser and sets ``func``: the add_* functions are
alike in shape only), and every command prints through `_emit`; the commands that run
scenarios or read results import their layers only when called.

Invariants: `main` returns the exit status instead of exiting (the console script does
``sys.exit(main())``): 0 success, 1 a failed or crashed run (``run``, ``compare``), 2 bad
input (a `topo.ConfigError` or an argument error, printed as ONE line
``slabemu: error: ...`` on stderr, never a traceback), 130 interrupted.  ``--json`` puts
only JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Sequence

from topo import ConfigError, Placement, Topology, load_topology, place
from topo.cpulist import format_cpulist
from topo.sizes import format_size

from . import __version__
from .kernel.geometry import ALLOCATORS
from .report.slabinfo import created_slabinfo_rows, format_aliases, format_slabinfo

__all__ = ["main", "build_parser", "COMMANDS"]

PROG = "slabemu"


class UsageError(Exception):
    """An argument error, reported like a ConfigError (one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting on errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- shared options ---------------------------------------------------------------------------

def _add_topology_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("topology", nargs="?", metavar="TOPOLOGY",
                   help="a .toml file, a name in configs/topologies (e.g. xeon-2s12c), or 'host'")
    p.add_argument("--synthetic", metavar="STR",
                   help='an hwloc synthetic topology, e.g. "package:2 numa:2 core:4 pu:2"')
    p.add_argument("--numactl", metavar="FILE",
                   help="a file holding `numactl --hardware` output ('-' reads stdin)")
    p.add_argument("--memory-cap", metavar="SIZE",
                   help="cap the total emulated memory, e.g. 512MiB (default for numactl "
                        "dumps and the host: 1GiB)")
    p.add_argument("--json", action="store_true", help="print JSON only")


def _topology_from(args: argparse.Namespace) -> Topology:
    given = [name for name, value in (("TOPOLOGY", args.topology), ("--synthetic", args.synthetic),
                                      ("--numactl", args.numactl)) if value is not None]
    if len(given) != 1:
        raise ConfigError("command line", "TOPOLOGY",
                          "exactly one of TOPOLOGY, --synthetic STR or --numactl FILE",
                          " and ".join(given) if given else "none")
    return load_topology(args.topology, synthetic=args.synthetic, numactl=args.numactl,
                         memory_cap=args.memory_cap)


def _emit(args: argparse.Namespace, data: object, text) -> None:
    """Every command's output: with --json, `data` as JSON and nothing else on stdout;
    otherwise the text `text()` returns."""
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(text(), end="")


# -- topo show --------------------------------------------------------------------------------

def format_topology(t: Topology) -> str:
    """The numactl-like summary `topo show` prints."""
    lines = [f"topology: {t.name} ({t.arch}, page size {t.page_size}, cache line {t.cache_line})",
             f"available: {t.nr_nodes} nodes ({format_cpulist(t.node_ids)})"]
    for n in t.nodes:
        cpus = " ".join(str(c) for c in n.cpus)
        lines.append(f"node {n.id} cpus:" + (f" {cpus}" if cpus else ""))
        lines.append(f"node {n.id} size: {format_size(n.memory) if n.memory else '0 MiB'}")
    lines.append("node distances:")  # numactl's layout: "% 3d " per column
    lines.append("node" + "".join(f" {i:>3}" for i in t.node_ids))
    for i, row in zip(t.node_ids, t.distances):
        lines.append(f"{i:>3}:" + "".join(f" {v:>3}" for v in row))
    lines.append(f"packages: {t.packages}, cores: {t.cores}, threads per core: "
                 f"{t.threads_per_core}, cpus: {t.nr_cpus}")
    return "\n".join(lines)


def cmd_topo_show(args: argparse.Namespace) -> int:
    t = _topology_from(args)
    _emit(args, t.to_dict(), lambda: format_topology(t) + "\n")
    return 0


# -- topo place -------------------------------------------------------------------------------

def format_placement(t: Topology, p: Placement) -> str:
    lines = [f"topology: {t.name}, {t.nr_cpus} CPUs on {t.nr_nodes} nodes",
             f"placement: {p.policy} on host CPUs {format_cpulist(p.host_cpus)}"]
    for cpu, host_cpu in zip(t.cpus, p.mapping):
        lines.append(f"cpu {cpu.id} (node {cpu.node}) -> host cpu {host_cpu}")
    if p.oversubscribed:
        lines.append(f"oversubscribed: {t.nr_cpus} emulated CPUs on {len(p.host_cpus_used)} host "
                     f"CPUs ({p.oversubscription:.1f}x, up to {p.max_per_host_cpu} on one)")
    return "\n".join(lines)


def cmd_topo_place(args: argparse.Namespace) -> int:
    t = _topology_from(args)
    p = place(t, args.placement)
    _emit(args, {"topology": t.name, **p.to_dict(),
                  "map": [{"cpu": c.id, "node": c.node, "host_cpu": h}
                          for c, h in zip(t.cpus, p.mapping)]},
          lambda: format_placement(t, p) + "\n")
    return 0


def add_topo(sub: argparse._SubParsersAction) -> None:
    topo = sub.add_parser("topo", help="show and place emulated topologies",
                          description="Show an emulated topology or its placement on this host.")
    topo_sub = topo.add_subparsers(dest="topo_command", metavar="{show,place}", parser_class=_Parser)
    topo.set_defaults(func=lambda args: _missing_subcommand(topo))

    show = topo_sub.add_parser("show", help="print a topology like numactl --hardware",
                               description="Print an emulated topology (numactl-like, or --json).")
    _add_topology_source(show)
    show.set_defaults(func=cmd_topo_show)

    placep = topo_sub.add_parser("place", help="map emulated CPUs onto host CPUs",
                                 description="Show which host CPU plays each emulated CPU.")
    _add_topology_source(placep)
    placep.add_argument("--placement", metavar="P", default="compact",
                        help="compact (default), scatter, or a map EMU:HOST,... e.g. 0:2,1:3")
    placep.set_defaults(func=cmd_topo_place)


# -- caches -----------------------------------------------------------------------------------

def cmd_caches(args: argparse.Namespace) -> int:
    specs: list[tuple[str, int, int]] = []
    allocator = args.allocator
    nomerge = args.slab_nomerge
    if args.scenario is not None:
        from .workload.scenario import load_scenario

        sc = load_scenario(args.scenario)
        if args.topology is None and args.synthetic is None and args.numactl is None:
            args.topology = sc.topology  # the scenario's machine unless one is given
        allocator = allocator or sc.allocator
        # as the runner boots it: slub_debug's flags are in SLUB_NEVER_MERGE (merge.py)
        nomerge = nomerge or sc.kernel.slab_nomerge or sc.kernel.slub_debug
        # kmalloc entries use the kmalloc caches; named ones go through kmem_cache_create
        specs = [(c.name, c.size, c.align) for c in sc.caches if not c.kmalloc]
    t = _topology_from(args)
    rows = created_slabinfo_rows(allocator or "slub", t, specs, nomerge=nomerge,
                                 with_geometry=args.json)
    _emit(args, rows, lambda: format_slabinfo(rows) + (
        "\n" + aliases if (aliases := format_aliases(rows)) else ""))
    return 0


def add_caches(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caches", help="list the slab caches in /proc/slabinfo 2.1 format",
        description="List the caches the emulated kernel has right after kmem_cache_init() "
                    "on this topology, as /proc/slabinfo (version 2.1) prints them: newest "
                    "first, like the kernel's slab_caches list.  With --scenario, the "
                    "scenario's named caches are then created as kmem_cache_create() would: "
                    "under SLUB a cache that find_mergeable() matches becomes an alias of an "
                    "existing cache (no slabinfo line of its own; the aliases follow, as "
                    "tools/vm/slabinfo -a prints them); SLAB never merges (3.16).  Object "
                    "and slab counts are zero (no allocator has run); --json adds each "
                    "cache's geometry, refcount and aliases.")
    _add_topology_source(p)
    p.add_argument("--scenario", metavar="NAME|FILE",
                   help="also create this scenario's named caches (a name in "
                        "configs/scenarios or a file); its topology and allocator unless "
                        "given")
    p.add_argument("--allocator", choices=ALLOCATORS, default=None,
                   help="slub (default, or the scenario's) or slab")
    p.add_argument("--slab-nomerge", action="store_true",
                   help="boot with slub_nomerge (slab_nomerge from 3.19): SLUB merges no "
                        "cache (also set by the scenario's [kernel] slab_nomerge)")
    p.set_defaults(func=cmd_caches)


# -- run ----------------------------------------------------------------------------------------

def _run_overrides(args: argparse.Namespace) -> dict:
    """Command-line options override the scenario's fields.  An op budget given alone
    replaces the scenario's duration and the other way round; both may be given."""
    kw = {}
    for opt, fieldname in (("topology", "topology"), ("allocator", "allocator"),
                           ("policy", "policy"), ("seed", "seed"), ("mode", "mode"),
                           ("workers", "workers"), ("placement", "placement"),
                           ("config", "kernel")):
        value = getattr(args, opt)
        if value is not None:
            kw[fieldname] = value
    if args.ops is not None:
        kw["ops_per_cpu"] = args.ops
        if args.duration is None:
            kw["duration"] = None
    if args.duration is not None:
        kw["duration"] = args.duration
        if args.ops is None:
            kw["ops_per_cpu"] = None
    return kw


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return v


def _int_at_least(lo: int):
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}")
        return v
    return conv


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO",
                   help="a scenario .toml file or a name in configs/scenarios")
    p.add_argument("--topology", metavar="T", help="override the scenario's topology")
    p.add_argument("--allocator", choices=ALLOCATORS, help="slub or slab")
    p.add_argument("--seed", type=_int_at_least(0), metavar="N")
    p.add_argument("--mode", choices=("parallel", "deterministic", "virtual"),
                   help="parallel (default): real concurrency; deterministic: a seeded "
                        "interleaving; virtual: a discrete-event run in virtual ns "
                        "(docs/virtual-time.md)")
    p.add_argument("--costs", metavar="C",
                   help="virtual mode's cost file: a name in configs/costs or a file "
                        "(default xeon-2s-2014)")
    p.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                   help="run this long (replaces the scenario's op budget unless --ops is given)")
    p.add_argument("--ops", type=_int_at_least(1), metavar="N_PER_CPU",
                   help="op budget per emulated CPU (replaces the duration unless --duration "
                        "is given)")
    p.add_argument("--workers", type=_int_at_least(1), metavar="N",
                   help="worker processes (default: one per emulated CPU up to the host's "
                        "CPU count, then grouping)")
    p.add_argument("--placement", metavar="P", help="compact, scatter or a map EMU:HOST,...")
    p.add_argument("--config", metavar="K",
                   help="the kernel build: a preset in configs/kernels or a file (replaces "
                        "the scenario's [kernel]; default: full preemption, SLUB_STATS)")
    p.add_argument("--stop-on-error", action="store_true",
                   help="stop at the first KASAN report (exit status 1)")
    p.add_argument("--check-interval", type=_positive_float, metavar="SECONDS",
                   help="pause every worker this often and check every invariant")
    p.add_argument("--sample-interval", type=_positive_float, metavar="SECONDS", default=0.5,
                   help="how often the stream gets a snapshot (default 0.5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    p.add_argument("--json", action="store_true", help="print the summary as JSON only")


def cmd_run(args: argparse.Namespace) -> int:
    from .report.summary import format_summary
    from .run.runner import RunOptions, run_scenario
    from .workload.scenario import load_scenario

    scenario = load_scenario(args.scenario).with_overrides(**_run_overrides(args))
    opts = RunOptions(out=args.out, stop_on_error=args.stop_on_error,
                      progress=False if args.no_progress else None,
                      sample_interval=args.sample_interval,
                      check_interval=args.check_interval or 0.0, quiet=args.no_progress,
                      costs=args.costs)
    result = run_scenario(scenario, opts)
    _emit(args, result.summary, lambda: format_summary(result.summary) + f"results: {result.out}\n")
    if result.summary.get("error"):
        print(f"{PROG}: run {result.summary['exit']}: {result.summary['error']}", file=sys.stderr)
    return result.exit_code


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run a scenario on an emulated machine",
        description="Run a scenario: boot the emulated kernel on the scenario's topology, run "
                    "every emulated CPU's workload (parallel: worker processes pinned to host "
                    "CPUs; deterministic: one process, a seeded interleaving) and write a "
                    "results directory.  Exit status: 0 ok, 1 failed or crashed, 2 bad input, "
                    "130 interrupted.")
    _add_run_options(p)
    p.add_argument("--policy", metavar="P", help="a policy preset (configs/policies) or file")
    p.add_argument("--out", metavar="DIR",
                   help="results directory (default results/<time>-<scenario>/)")
    p.set_defaults(func=cmd_run)


# -- compare ------------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    from .kernel.policy import load_policy
    from .report.compare import format_compare
    from .run.runner import EXIT_STATUS, RunOptions, prepare_out, run_scenario
    from .workload.scenario import load_scenario

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies:
        raise UsageError("--policies: expected a comma-separated list of policies, e.g. "
                         "pre-series,v2-full")
    if len(set(policies)) != len(policies):
        raise UsageError(f"--policies: expected each policy once, got {args.policies!r}")
    for p in policies:
        load_policy(p)  # bad names fail before anything runs
    overrides = _run_overrides(args)
    base = load_scenario(args.scenario)
    scenarios = [base.with_overrides(**overrides, policy=p) for p in policies]
    out = prepare_out(args.out, f"compare-{base.name}")
    summaries = []
    status = 0
    for sc in scenarios:
        opts = RunOptions(out=str(out / sc.policy.replace("/", "_")), stop_on_error=args.stop_on_error,
                          progress=False if args.no_progress else None,
                          sample_interval=args.sample_interval,
                          check_interval=args.check_interval or 0.0, quiet=args.no_progress,
                          costs=args.costs)
        result = run_scenario(sc, opts)
        summaries.append(result.summary)
        if result.summary.get("error"):
            print(f"{PROG}: {sc.policy}: run {result.summary['exit']}: {result.summary['error']}",
                  file=sys.stderr)
        status = max(status, result.exit_code)
        if result.exit_code == EXIT_STATUS["interrupted"]:
            break
    _emit(args, {"scenario": base.name, "runs": summaries},
          lambda: format_compare(base.name, summaries) + f"results: {out}\n")
    return status


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="run a scenario under several policies, side by side",
        description="Run one scenario once per policy (the same seed and options) and print "
                    "one table: dead caches leaked, pages leaked, memcgs pinned, KASAN "
                    "use-after-frees, ops/s, list_lock acquisitions and contentions per 1000 "
                    "ops.  Each run's results go to DIR/<policy>/.")
    _add_run_options(p)
    p.add_argument("--policies", metavar="P1,P2,...", required=True,
                   help="policy presets (configs/policies) or files, comma-separated")
    p.add_argument("--out", metavar="DIR",
                   help="results directory (default results/<time>-compare-<scenario>/)")
    p.set_defaults(func=cmd_compare, policy=None)


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    raise UsageError(f"a subcommand is required (see '{parser.prog} --help')")


# Each entry registers one top-level subcommand on the sub-parsers action.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_topo, add_caches, add_run,
                                                                 add_compare]


# -- report -----------------------------------------------------------------------------------

REPORT_VIEWS = ("summary", "slabinfo", "lockstat", "kasan", "leaks")


def cmd_report(args: argparse.Namespace) -> int:
    """`slabemu report DIR [VIEW]`: one report of a results directory, from summary.json."""
    from .report.kasan import format_kasan
    from .report.leaks import format_leaks
    from .report.lockstat import aggregate_per_node, format_lock_stat
    from .report.results import load_summary
    from .report.summary import format_summary, kernel_line

    from .campaign.campaign import is_campaign_dir

    if is_campaign_dir(args.dir):  # a campaign directory (slabemu stress): its tables
        from .campaign.commands import report_campaign

        if args.view != "summary" or args.per_node:
            raise UsageError("a campaign directory has one report (no VIEW, no --per-node)")
        return report_campaign(args.dir, args.json)
    if args.per_node and args.view != "lockstat":
        raise UsageError(f"--per-node applies to the lockstat view, not {args.view} "
                         f"(see 'slabemu report --help')")
    s = load_summary(args.dir)
    if args.view == "summary":
        data, text = s, (lambda: format_summary(s))
    elif args.view == "slabinfo":
        # nested "tunables" (summary.json) flattened into the slabinfo row's columns
        rows = [{**c, **(c.get("tunables") or {})} for c in s["caches"]]
        data, text = s["caches"], (lambda: format_slabinfo(rows, extended=True))
    elif args.view == "lockstat":
        locks = aggregate_per_node(s["locks"]) if args.per_node else s["locks"]
        data, text = locks, (lambda: format_lock_stat(locks))
    elif args.view == "kasan":
        data = s["kasan"]
        text = (lambda: format_kasan(s["kasan"], s["kasan_total"], kernel_line(s))
                or "no KASAN reports\n")
    else:
        data, text = s["leaks"], (lambda: format_leaks(s["leaks"]))
    _emit(args, data, text)
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="show the reports of a run's results directory",
        description="Show one report of a results directory written by 'slabemu run': the "
                    "end-of-run summary (default), slabinfo (/proc/slabinfo 2.1, dead caches "
                    "marked ' : dead'), lockstat (/proc/lock_stat), kasan or leaks.  --json "
                    "prints the report's JSON from summary.json instead.")
    p.add_argument("dir", metavar="DIR", help="the results directory (run --out DIR), or a "
                   "campaign directory (stress --out DIR): its findings and strategy tables")
    p.add_argument("view", nargs="?", choices=REPORT_VIEWS, default="summary",
                   help="which report: " + ", ".join(REPORT_VIEWS) + " (default summary)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--per-node", action="store_true",
                   help="lockstat: sum each lock over caches per NUMA node")
    p.set_defaults(func=cmd_report)


COMMANDS.append(add_report)


def _study_commands() -> None:
    from .study.commands import add_plot, add_study  # pure Python, like this module

    COMMANDS.extend((add_study, add_plot))


_study_commands()


def _add_campaign_commands(sub: argparse._SubParsersAction) -> None:
    """`stress` and `replay` (emulator/campaign/commands.py, docs/campaigns.md)."""
    from .campaign.commands import add_replay, add_stress

    add_stress(sub)
    add_replay(sub)


COMMANDS.append(_add_campaign_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A multiprocess hardware-topology emulator for the "
                     "Linux slab allocators.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    parser.set_defaults(func=lambda args: _missing_subcommand(parser))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slabemu``; returns the exit status."""
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help and --version
            return e.code if isinstance(e.code, int) else 0
        return args.func(args)
    except (ConfigError, UsageError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `slabemu ... | head`: stop quietly; point stdout at /dev/null so the interpreter's
        # final flush does not complain again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
