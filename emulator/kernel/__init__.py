"""The emulated kernel: page allocator, KASAN-style shadow (SLUB, SLAB, memcg to come)."""
