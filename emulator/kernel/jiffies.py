"""jiffies, the machine's tick clock, and the timer helpers SLAB's cache_reap uses.

What it models: the global `jiffies` counter (kernel/time/timer.c, do_timer), at
CONFIG_HZ = 250 (HZ below: the default of Debian's and Ubuntu's 3.16 builds), and
kernel/time/timer.c's round_jiffies_common() / __round_jiffies_relative() (3.16), which
start_cpu_timer() and cache_reap() use to arm each CPU's reap work.

The clock the ticks come from (`tick`), chosen by config `step_ns`:
  step_ns > 0   the deterministic clock: every machine step (one phase of one CPU, run
                by the single worker of --mode deterministic) advances the machine's
                time by step_ns nanoseconds (ctl.clock_steps counts the steps), so a
                seed gives the same jiffies at the same step in every run;
  step_ns == 0  wall time: monotonic ns since the run's start (ctl.clock_base_ns), as
                parallel mode's workers see it;
  step_ns < 0   virtual time (--mode virtual, run/virtual.py): the clock of the CPU being
                stepped, in virtual ns (the lock table's vclock row), so jiffies, reap
                timers and creation latencies are the emulated machine's and a seed
                gives the same ones on any host.
A worker ticks at its control points (every CTL_EVERY steps, run/loop.py), which is the
timer interrupt's granularity here; jiffies only move forward (a CAS max, any worker).
jiffies start at 0 when the machine boots (the kernel starts at INITIAL_JIFFIES,
-300 * HZ, to catch wrap bugs; nothing modelled depends on the wrap).

Invariants: ctl.jiffies never decreases; with step_ns > 0,
  ctl.jiffies == ctl.clock_steps * step_ns * HZ // 10**9 after every tick.
"""

from __future__ import annotations

from numba import njit

from ..machine import structs as S
from ..machine.atomics import cmpxchg, load_relaxed, monotonic_ns
from ..machine.spinlock import VCLOCK_ROW_FROM_END

HZ = 250  # CONFIG_HZ_250
NSEC_PER_SEC = 1_000_000_000
REAPTIMEOUT_AC = 2 * HZ  # mm/slab.c: how often a CPU runs cache_reap
REAPTIMEOUT_NODE = 4 * HZ  # mm/slab.c: how often a node's shared array and free slabs go
KMEM_CACHE_STRIDE = 256  # nominal bytes per struct kmem_cache, for next_reap's spread


@njit(cache=True, inline="always")
def jiffies(k):
    """READ_ONCE(jiffies)."""
    return load_relaxed(k.ctl, (0, S.CTL_JIFFIES))


@njit(cache=True, inline="always")
def clock_ns(k):
    """The machine's time in ns (the same clock the ticks read)."""
    step_ns = k.config[S.CONFIG_STEP_NS]
    if step_ns > 0:
        return load_relaxed(k.ctl, (0, S.CTL_CLOCK_STEPS)) * step_ns
    if step_ns < 0:
        return k.lock[k.lock.shape[0] - VCLOCK_ROW_FROM_END, S.VCLOCK_NOW]
    return monotonic_ns() - k.ctl[0, S.CTL_CLOCK_BASE_NS]


@njit(cache=True)
def tick(k, steps):
    """do_timer(): account `steps` machine steps (the deterministic clock counts them)
    and bring jiffies up to the clock.  Returns jiffies."""
    if k.config[S.CONFIG_STEP_NS] > 0:
        k.ctl[0, S.CTL_CLOCK_STEPS] += steps  # one worker in this mode
    now = clock_ns(k) * HZ // NSEC_PER_SEC
    while True:
        cur = load_relaxed(k.ctl, (0, S.CTL_JIFFIES))
        # relaxed is enough: jiffies publish nothing but themselves (a timer that reads
        # them late fires a tick later, as a timer interrupt on another CPU may)
        if now <= cur or cmpxchg(k.ctl, (0, S.CTL_JIFFIES), cur, now) == cur:
            return max(now, cur)


@njit(cache=True)
def round_jiffies_common(j, cpu, now):
    """kernel/time/timer.c round_jiffies_common(j, cpu, force_up=false): round the
    absolute time j to a whole second, skewed by 3 jiffies per CPU so that CPUs do not
    all fire in the same tick; j itself if the rounded time is not in the future."""
    original = j
    j += cpu * 3
    rem = j % HZ
    if rem < HZ // 4:
        j = j - rem  # round down
    else:
        j = j - rem + HZ  # round up
    j -= cpu * 3
    return j if j > now else original


@njit(cache=True)
def round_jiffies_relative(j, cpu, now):
    """__round_jiffies_relative(j, cpu): a relative timeout rounded as above."""
    return round_jiffies_common(j + now, cpu, now) - now


@njit(cache=True, inline="always")
def cache_next_reap(s, now):
    """mm/slab.c init_cache_node_node()/alloc_kmem_cache_node() (3.16):
    n->next_reap = jiffies + REAPTIMEOUT_NODE + ((unsigned long)cachep) % REAPTIMEOUT_NODE;
    the descriptor's address is its row times KMEM_CACHE_STRIDE here."""
    return now + REAPTIMEOUT_NODE + (s * KMEM_CACHE_STRIDE) % REAPTIMEOUT_NODE
