"""Schedule exploration strategies, the Python side: per-worker state for campaign/sched.py.

A `Strategy` is what a run is given (`RunOptions.scheduler`); in each worker hosting
several emulated CPUs (grouped mode; deterministic mode's one worker) `worker()` builds
that worker's state and `loop` steps it through the jitted `explore_loop`, in place of
run/loop.py's `worker_loop` (same arguments, same results).

  random    the worker's xorshift64 stream picks each step's CPU: today's runs;
  pct       PCT with depth d (`depth`) over an estimate k of the steps (`steps`): from the
            worker's stream, a random permutation gives the start priorities d..d+n-1 and
            d-1 change points are drawn in [0, k).  A bug of depth d is found with
            probability at least 1 / (n k^(d-1)) per run (`pct_bound`);
  bounded   one schedule of the preemption-bounded search (`preemptions`: (step, CPU
            index) pairs; campaign/explore.py enumerates them);
  replay    a recorded schedule (`replay`), step for step.

Every strategy records each step's CPU index into the runner's schedule buffer, so any
deterministic run, whatever its strategy, is reproduced by `replay` of its schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..machine.prng import STREAM_WORKER, seed_stream, uniform_below, xorshift64
from .sched import (ST_CUR, ST_DEPTH, ST_NR, ST_STOP_AT_REPORT, ST_STRATEGY, STRAT_BOUNDED,
                    STRAT_PCT, STRAT_RANDOM, STRAT_REPLAY, explore_loop)

STRATEGIES = ("random", "pct", "bounded")
_CODES = {"random": STRAT_RANDOM, "pct": STRAT_PCT, "bounded": STRAT_BOUNDED,
          "replay": STRAT_REPLAY}
POINTS_CAP = 1 << 16  # bounded: preemption points kept per schedule


def pct_bound(n: int, k: int, d: int) -> float:
    """PCT's guarantee: the least probability that one run finds a bug of depth d, with
    n threads (CPUs) and k steps (Burckhardt et al., ASPLOS 2010, Theorem 1)."""
    return 1.0 / (n * float(max(k, 1)) ** (d - 1))


def pct_steps_estimate(ops_per_cpu: int, nr_cpus: int) -> int:
    """k for PCT: about 4 steps per op (a slow-path free takes 5 phases, a fast one 1,
    memcg offlines more) over every hosted CPU."""
    return max(16, 4 * int(ops_per_cpu) * int(nr_cpus))


@dataclass
class Strategy:
    name: str = "random"
    depth: int = 3  # pct: d
    steps: int = 0  # pct: k (0: pct_steps_estimate from the run)
    preemptions: tuple = ()  # bounded: ((step, cpu index), ...) in step order
    replay: np.ndarray | None = None  # replay: the schedule
    stop_at_report: bool = True
    points_cap: int = POINTS_CAP
    workers: list = field(default_factory=list)  # the WorkerSched built in this process

    def __post_init__(self):
        if self.name not in _CODES:
            raise ValueError(f"unknown strategy {self.name!r}")

    def worker(self, seed: int, index: int, nr_cpus: int) -> "WorkerSched":
        w = WorkerSched(self, seed, index, nr_cpus)
        self.workers.append(w)
        return w


class WorkerSched:
    """One worker's strategy state: the ST_* vector and the strategy's arrays."""

    def __init__(self, strategy: Strategy, seed: int, index: int, n: int):
        self.strategy = strategy
        self.n = n
        self.st = np.zeros(ST_NR, np.int64)
        self.st[ST_STRATEGY] = _CODES[strategy.name]
        self.st[ST_STOP_AT_REPORT] = 1 if strategy.stop_at_report else 0
        self.prio = np.zeros(n, np.int64)
        self.cps = np.zeros(0, np.int64)
        self.cpt = np.zeros(0, np.int64)
        self.points = np.zeros((1, 3), np.int64)
        self.replay = np.zeros(0, np.int64)
        if strategy.name == "pct":
            self._init_pct(seed, index, n)
        elif strategy.name == "bounded":
            pre = sorted(strategy.preemptions)
            self.cps = np.array([p[0] for p in pre], np.int64)
            self.cpt = np.array([p[1] for p in pre], np.int64)
            self.points = np.zeros((strategy.points_cap, 3), np.int64)
            self.st[ST_CUR] = 0
        elif strategy.name == "replay":
            self.replay = np.ascontiguousarray(strategy.replay, dtype=np.int64)
            if self.replay.size and (self.replay.min() < 0 or self.replay.max() >= 2 * n):
                raise ValueError(f"the schedule names CPU index {int(self.replay.max()) % n}, "
                                 f"the run hosts {n}")

    def _init_pct(self, seed: int, index: int, n: int) -> None:
        s = self.strategy
        d = max(1, int(s.depth))
        k = max(1, int(s.steps))
        x = seed_stream(seed, STREAM_WORKER, index) ^ 0x5CA1AB1E  # not the random stream
        if x == 0:
            x = 1
        perm = list(range(n))
        for i in range(n - 1, 0, -1):  # Fisher-Yates
            x = int(xorshift64(x))
            j = int(uniform_below(x, i + 1))
            perm[i], perm[j] = perm[j], perm[i]
        self.prio[:] = [d + p for p in perm]
        cps = []
        for _ in range(d - 1):
            x = int(xorshift64(x))
            cps.append(int(uniform_below(x, k)))
        self.cps = np.array(sorted(cps), np.int64)
        self.st[ST_DEPTH] = d
        self.initial_prio = self.prio.copy()

    def loop(self, k, wp, wc, cpus, ws, schedule, max_steps, msg, wmsg) -> int:
        return int(explore_loop(k, wp, wc, cpus, ws, self.st, self.prio, self.cps, self.cpt,
                                self.points, self.replay, schedule, max_steps, msg, wmsg))

    def preemption_points(self) -> np.ndarray:
        """bounded: the (step, current CPU index, kernel preemption possible) rows where a
        preemption could go."""
        from .sched import ST_NR_POINTS

        return self.points[:int(self.st[ST_NR_POINTS])].copy()


def warm_explore(k, wp, wc) -> None:
    """Compile (or load) explore_loop on run/warmup.py's tiny machine, every strategy."""
    from ..run.loop import WS_NR, worker_buffers

    from ..machine import structs as S

    k.ctl[0, :] = 0
    k.ctl[0, S.CTL_NR_WORKERS] = 1
    cpus = np.arange(k.cpu.shape[0], dtype=np.int64)
    for st in (Strategy("random", stop_at_report=False), Strategy("pct", steps=64),
               Strategy("bounded", preemptions=((3, 1),)),
               Strategy("replay", replay=np.zeros(8, np.int64))):
        w = st.worker(1, 0, len(cpus))
        ws = np.zeros(WS_NR, np.int64)
        ws[0] = 12345
        w.loop(k, wp, wc, cpus, ws, np.zeros(64, np.int64), 256, *worker_buffers(k))
