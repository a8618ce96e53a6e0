"""The ``slabemu`` command line: thin argument parsing over the library.

Models design.md section 8: ``slabemu topo show``, ``slabemu topo place`` and
``slabemu caches`` today; ``run``, ``compare`` and ``report`` join later as further
entries in `COMMANDS` (one ``add_*`` function that registers a sub-parser and sets
``func``).

Invariants: `main` returns the exit status instead of exiting (the console script does
``sys.exit(main())``): 0 success, 2 bad input (a `topo.ConfigError` or an argument
error, printed as ONE line ``slabemu: error: ...`` on stderr, never a traceback), 130
interrupted.  ``--json`` puts only JSON on stdout.
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
from .report.slabinfo import boot_slabinfo_rows, format_slabinfo

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


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


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
    if args.json:
        _print_json(t.to_dict())
    else:
        print(format_topology(t))
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
    if args.json:
        _print_json({"topology": t.name, **p.to_dict(),
                     "map": [{"cpu": c.id, "node": c.node, "host_cpu": h}
                             for c, h in zip(t.cpus, p.mapping)]})
    else:
        print(format_placement(t, p))
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
    t = _topology_from(args)
    rows = boot_slabinfo_rows(args.allocator, t, with_geometry=args.json)
    if args.json:
        _print_json(rows)
    else:
        print(format_slabinfo(rows), end="")
    return 0


def add_caches(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caches", help="list the boot slab caches in /proc/slabinfo 2.1 format",
        description="List the caches the emulated kernel has right after kmem_cache_init() "
                    "on this topology, as /proc/slabinfo (version 2.1) prints them: newest "
                    "first, like the kernel's slab_caches list.  Object and slab counts are "
                    "zero (no allocator has run); --json adds each cache's geometry.")
    _add_topology_source(p)
    p.add_argument("--allocator", choices=ALLOCATORS, default="slub",
                   help="slub (default) or slab")
    p.set_defaults(func=cmd_caches)


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    raise UsageError(f"a subcommand is required (see '{parser.prog} --help')")


# Each entry registers one top-level subcommand on the sub-parsers action.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_topo, add_caches]


# -- report -----------------------------------------------------------------------------------

REPORT_VIEWS = ("summary", "slabinfo", "lockstat", "kasan", "leaks")


def cmd_report(args: argparse.Namespace) -> int:
    """`slabemu report DIR [VIEW]`: one report of a results directory, from summary.json."""
    from .report.kasan import format_kasan
    from .report.leaks import format_leaks
    from .report.lockstat import aggregate_per_node, format_lock_stat
    from .report.results import load_summary
    from .report.summary import format_summary

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
        text = (lambda: format_kasan(s["kasan"], s["kasan_total"]) or "no KASAN reports\n")
    else:
        data, text = s["leaks"], (lambda: format_leaks(s["leaks"]))
    if args.json:
        _print_json(data)
    else:
        print(text(), end="")
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="show the reports of a run's results directory",
        description="Show one report of a results directory written by 'slabemu run': the "
                    "end-of-run summary (default), slabinfo (/proc/slabinfo 2.1, dead caches "
                    "marked ' : dead'), lockstat (/proc/lock_stat), kasan or leaks.  --json "
                    "prints the report's JSON from summary.json instead.")
    p.add_argument("dir", metavar="DIR", help="the results directory (run --out DIR)")
    p.add_argument("view", nargs="?", choices=REPORT_VIEWS, default="summary",
                   help="which report: " + ", ".join(REPORT_VIEWS) + " (default summary)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--per-node", action="store_true",
                   help="lockstat: sum each lock over caches per NUMA node")
    p.set_defaults(func=cmd_report)


COMMANDS.append(add_report)


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
