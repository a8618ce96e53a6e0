"""Reports: what a run (or a booted emulated kernel) looks like, in the kernel's own formats.

Models design.md section 7.  Today: `slabinfo` (/proc/slabinfo version 2.1).  Reports read
kernel and run results; nothing in `emulator.kernel` imports from here.
"""

from .slabinfo import (SlabinfoRow, boot_slabinfo_rows, fold_memcg_children, format_slabinfo,
                       parse_slabinfo)

__all__ = ["SlabinfoRow", "boot_slabinfo_rows", "fold_memcg_children", "format_slabinfo",
           "parse_slabinfo"]
