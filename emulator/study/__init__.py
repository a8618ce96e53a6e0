"""Studies: the series' review questions answered in virtual time (`slabemu study NAME`).

Each study runs scenarios in virtual mode (emulator/run/virtual.py), prints a table next
to the published numbers and draws a figure.  Pure Python: no jitted code.
  davydov   Davydov's SLAB measurement: free N node-local objects per CPU into a live
            and a dead cache, 64..1024 bytes (emulator/study/davydov.py);
  reparent  the re-parenting RFC's cost: contended same-node kfree into one memcg's
            cache under v2-full, no-cpu-partial and reparent (full-slab tracking)
            (emulator/study/reparent.py);
  scaling   one dead cache's frees on one node with 1, 2, 4, 6, 12 CPUs: where
            list_lock saturates (emulator/study/scaling.py).
"""

from __future__ import annotations

STUDIES = ("davydov", "reparent", "scaling")
