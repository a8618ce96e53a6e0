"""`slabemu study NAME` and `slabemu plot DIR`: their argument parsers and commands.

Registered by emulator/cli.py (COMMANDS).  Pure Python."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from . import STUDIES


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def cmd_study(args: argparse.Namespace) -> int:
    from ..machine.costs import load_costs
    from ..run.runner import prepare_out

    load_costs(args.costs)  # a bad cost file fails before anything runs
    mod = importlib.import_module(f".{args.name}", __package__)
    out = prepare_out(args.out, f"study-{args.name}")
    kw = {"costs": args.costs}
    if args.objects is not None:
        if args.name == "reparent":
            kw["ops"] = args.objects
        else:
            kw["objects"] = args.objects
    res = mod.run(out, **kw)
    text = mod.format_table(res)
    (out / "table.txt").write_text(text)
    figure = Path(args.plot) if args.plot else out / f"{args.name}.png"
    try:
        mod.plot(res, figure)
        where = f"figure: {figure}\n"
    except Exception as e:  # matplotlib missing: the table still stands
        from ..report.plot import PlotUnavailable

        if not isinstance(e, PlotUnavailable):
            raise
        where = f"no figure: {e}\n"
    print(text + where + f"results: {out}")
    return 0


def add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study", help="answer one of the series' review questions in virtual time",
        description="Run a study's scenarios in virtual mode, print its table next to the "
                    "published numbers and draw its figure.  davydov: free N node-local "
                    "objects per CPU into a live and a dead SLAB cache, 64-1024 bytes; "
                    "reparent: contended same-node kfree into one memcg's cache, without "
                    "cpu partial lists and with full-slab tracking; scaling: one dead cache's frees with 1-12 CPUs on one node.")
    p.add_argument("name", choices=STUDIES, metavar="NAME", help=", ".join(STUDIES))
    p.add_argument("--objects", type=_positive_int, metavar="N",
                   help="objects freed per CPU (davydov, scaling; default 10000, the review "
                        "used 1M: times are extrapolated) or ops per CPU (reparent, default "
                        "20000)")
    p.add_argument("--costs", metavar="C", help="cost file (default xeon-2s-2014)")
    p.add_argument("--out", metavar="DIR", help="results directory (default results/<time>-study-NAME/)")
    p.add_argument("--plot", metavar="FILE.png", help="where to draw the figure (default DIR/NAME.png)")
    p.set_defaults(func=cmd_study)


def cmd_plot(args: argparse.Namespace) -> int:
    from ..report.plot import plot_results

    path = plot_results(args.dir, args.out)
    print(f"figure: {path}")
    return 0


def add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot", help="draw a results directory's stream",
        description="Draw list_lock acquisitions, contentions and wait time per node over "
                    "time, ops/s per CPU, and dead caches and pinned memcgs over time, from "
                    "DIR/stream.msgpack (matplotlib: pip install 'slabemu[plot]').")
    p.add_argument("dir", metavar="DIR", help="a results directory")
    p.add_argument("--out", metavar="FILE.png", help="the figure (default DIR/plot.png)")
    p.set_defaults(func=cmd_plot)
