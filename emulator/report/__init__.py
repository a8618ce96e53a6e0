"""Reports: what a run (or a booted emulated kernel) looks like, in the kernel's own formats.

Models docs/design.md §11: `slabinfo` (/proc/slabinfo version 2.1), `lockstat`
(/proc/lock_stat version 0.4, per lock and per NUMA node), `kasan` (KASAN-style reports),
`leaks` (dead memcg caches still alive), `summary` (the end-of-run tables) and `results`
(loading and validating a results directory).  Reports read kernel and run results;
nothing in `emulator.kernel` imports from here.
"""

from .slabinfo import (SlabinfoRow, boot_slabinfo_rows, fold_memcg_children, format_slabinfo,
                       parse_slabinfo)

__all__ = ["SlabinfoRow", "boot_slabinfo_rows", "fold_memcg_children", "format_slabinfo",
           "parse_slabinfo"]
