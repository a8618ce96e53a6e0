"""slabemu's emulator: the emulated machine, kernel, workloads, runner and reports.

numba's on-disk cache is keyed per module on the sources its machine code can contain
(emulator/cachekey.py; emulator/machine/__init__.py installs it before any jitted code is
defined).  The pure-Python layers listed in `NOT_JITTED` (the command line, the runner's
parent side, reports, config loaders) hold no jitted code and are in no key, so editing
them costs no recompile; tests/emulator/test_numba_cache_key.py checks that no module
jitted code can reach imports one of them.
"""

from __future__ import annotations

__version__ = "0.1.0"


# Modules (paths relative to this package) that hold no jitted code and that no module
# holding jitted code imports.
NOT_JITTED = frozenset({
    "cli.py", "report/__init__.py", "report/slabinfo.py", "report/lockstat.py",
    "report/kasan.py", "report/leaks.py", "report/summary.py", "report/results.py",
    "report/compare.py", "__init__.py",
    "run/runner.py", "run/collect.py", "run/warmup.py", "workload/__init__.py",
    "workload/scenario.py", "kernel/policy.py", "kernel/check.py", "kernel/boot.py",
    "kernel/merge.py", "machine/costs.py", "report/plot.py", "study/__init__.py", "study/common.py",
    "study/staged.py", "study/davydov.py", "study/reparent.py", "study/scaling.py",
    "study/commands.py",
    "campaign/__init__.py", "campaign/strategies.py", "campaign/signature.py",
    "campaign/explore.py", "campaign/spec.py", "campaign/engine.py", "campaign/campaign.py",
    "campaign/repro.py", "campaign/minimise.py", "campaign/trace.py", "campaign/report.py",
    "campaign/commands.py",
})
