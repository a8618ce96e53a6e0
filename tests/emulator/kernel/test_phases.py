"""The op phase table (kernel/ops.py) and the task flags word (kernel/slab_common.py)."""

from __future__ import annotations

import re
from pathlib import Path

import emulator
from emulator.kernel import ops, slab_common

ROOT = Path(emulator.__file__).resolve().parent


def test_phase_constants_are_the_table_numbers():
    numbers, phases = ops._number_phases(ops._PHASE_TABLE, ops.SAME_PHASES)
    consts = {n: getattr(ops, n) for n in dir(ops) if n.startswith("PH_")}
    assert consts == numbers
    # every op numbers its phases FIRST_PHASE, FIRST_PHASE + 1, ... with no gap
    for op in {op for op, _ in phases}:
        mine = sorted(ph for o, ph in phases if o == op)
        assert mine == list(range(ops.FIRST_PHASE, ops.FIRST_PHASE + len(mine))), op
    assert ops.PHASES[(ops.OP_CACHE_FREE, ops.PH_FREE_STAT)] == ops.PHASES[(ops.OP_FREE, ops.PH_FREE_STAT)]


def test_numbering_catches_a_wrong_constant():
    table = ((ops.OP_FREE, "PH_A", "a", True), (ops.OP_FREE, "PH_B", "b", True),
             (ops.OP_SHRINK, "PH_C", "c", False))
    numbers, phases = ops._number_phases(table, {})
    assert numbers == {"PH_A": 0, "PH_B": 1, "PH_C": 0}
    assert phases[(ops.OP_SHRINK, 0)] == ("c", False)


def test_phase_names_as_reports_print_them():
    assert ops.phase_name(ops.OP_FREE, ops.PH_FREE_STAT) == "__slab_free:stat(CPU_PARTIAL_FREE)"
    assert ops.phase_name(ops.OP_CACHE_DESTROY, ops.PH_DESTROY_RELEASE) == "kmem_cache_destroy:release"
    assert ops.phase_name(ops.OP_CACHE_CREATE, ops.PH_CACHE_CREATE) == "memcg_create_kmem_cache"
    assert ops.phase_name(ops.OP_FREE, 9) == f"op{ops.OP_FREE}:phase9"


def test_only_the_flush_all_wait_is_not_a_preemption_point():
    off = [(op, ph) for (op, ph), (_name, preempt) in ops.PHASES.items() if not preempt]
    assert off == [(ops.OP_SHRINK, ops.PH_SHRINK_WAIT)]
    assert ops.PHASE_PREEMPTIBLE[ops.OP_SHRINK, ops.PH_SHRINK_WAIT] == 0
    assert ops.PHASE_PREEMPTIBLE[ops.OP_FREE, ops.PH_FREE_CMPXCHG] == 1


def test_slab_free_results_map_to_free_phases():
    from emulator.kernel import slub

    assert ops.SF_NEXT_PHASE[slub.SF_RETRY] == ops.PH_FREE_SLOW
    assert ops.SF_NEXT_PHASE[slub.SF_CMPXCHG] == ops.PH_FREE_CMPXCHG
    assert ops.SF_NEXT_PHASE[slub.SF_PUT_PARTIAL] == ops.PH_FREE_PUT_PARTIAL
    assert ops.SF_NEXT_PHASE[slub.SF_STAT] == ops.PH_FREE_STAT


def test_no_raw_phase_number_in_the_kernel():
    """Phases are compared and set through the PH_ names only."""
    raw = re.compile(r"(\bphase\s*[=!<>]=?\s*\d|TASK_(SUB_)?PHASE\]\s*(=|==|!=|>=?|<=?)\s*\d)")
    bad = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
           for p in sorted(ROOT.rglob("*.py"))
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if raw.search(line.split("#")[0])]
    assert not bad, bad


def test_task_flags_are_distinct_bits_declared_once():
    flags = {n: getattr(slab_common, n) for n in dir(slab_common) if n.startswith("TF_")}
    assert sorted(flags.values()) == sorted(slab_common.TASK_FLAGS)
    assert all(v > 0 and v & (v - 1) == 0 for v in flags.values())
    assert len(set(flags.values())) == len(flags)
    defined = re.compile(r"^TF_\w+\s*=", re.M)
    where = [p.relative_to(ROOT).as_posix() for p in sorted(ROOT.rglob("*.py"))
             if defined.search(p.read_text())]
    assert where == ["kernel/slab_common.py"]


def test_preemption_points_follow_the_preemption_model():
    """CONFIG_PREEMPT_NONE: no point; PREEMPT_VOLUNTARY: exactly the cond_resched()
    points; CONFIG_PREEMPT: the table's column, less slab_free's under patch 5."""
    from emulator.kernel.boot import Kernel
    from emulator.machine import structs as S
    from topo import load_topology

    voluntary = {(getattr(ops, o), getattr(ops, c)) for o, c in ops.COND_RESCHED_PHASES}
    assert (ops.OP_REAP, ops.PH_REAP) in voluntary and (ops.OP_SHRINK, ops.PH_SHRINK_FLUSH) in voluntary
    assert not any(op in (ops.OP_FREE, ops.OP_CACHE_FREE) for op, _ in voluntary)
    with Kernel(load_topology("twonode-2n4c"), "slub", max_memcgs=2) as K:
        k = K.mem
        assert k.config[S.CONFIG_PREEMPT_MODEL] == ops.PREEMPT_FULL  # the default build
        for model in (ops.PREEMPT_NONE, ops.PREEMPT_VOLUNTARY, ops.PREEMPT_FULL):
            for patch5 in (0, 1):
                k.config[S.CONFIG_PREEMPT_MODEL] = model
                k.config[S.CONFIG_NONPREEMPTIBLE_FREE] = patch5
                got = {key for key in ops.PHASES if ops.preemptible(k, *key)}
                if model == ops.PREEMPT_NONE:
                    want = set()
                elif model == ops.PREEMPT_VOLUNTARY:
                    want = {key for key in ops.PHASES if (ops.SAME_PHASES.get(key[0], key[0]), key[1])
                            in voluntary}
                else:
                    want = {(op, ph) for (op, ph), (_n, pre) in ops.PHASES.items() if pre and not (
                        patch5 and op in (ops.OP_FREE, ops.OP_CACHE_FREE) and ph != ops.PH_FREE)}
                assert got == want, (model, patch5)
