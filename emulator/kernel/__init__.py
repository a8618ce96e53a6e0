"""The emulated kernel: page allocator, KASAN-style shadow, slab geometry, SLUB, SLAB,
memcg kmem caches, RCU-sched, workqueues, the ops and their phases, the series' policies
and the invariant checker (docs/design.md §6, §7)."""
