/* The C twin of tools/bench/fastpath.py: kmalloc(64) + kfree pairs on the SLUB fast
 * path and on SLAB's per-CPU array cache, as the emulator models them.
 *
 *     cc -O2 -std=c11 -o bench_fastpath fastpath.c
 *     ./bench_fastpath MODE ITERS REPS      # prints the elapsed ns of each rep
 *
 * MODE: slub, slub_kasan, slab, slab_kasan, slub_nrt_model.
 *
 * What one pair does (the same work as emulator/kernel/{ops,slub,slab,slab_common}.py):
 *   kmalloc_node(64, NUMA_NO_NODE, cpu):
 *     kmalloc_slab: size_index[(size - 1) >> 3], then kmalloc_caches[index];
 *     cache_alloc: the allocator of the cache (SLUB or SLAB), read from the cache;
 *     SLUB slab_alloc_node: c = this CPU's kmem_cache_cpu; read tid, freelist, page;
 *       node_match; next = the free pointer stored in the object (at s->offset);
 *       the this_cpu_cmpxchg_double check (freelist and tid unchanged), then
 *       c->freelist = next, c->tid += TID_STEP, stat(ALLOC_FASTPATH)++;
 *     SLAB slab_alloc_node: the CPU's memory node check, ____cache_alloc: ac->avail > 0,
 *       ac->touched = 1, stat(ALLOCHIT)++, return ac->entry[--ac->avail];
 *     kasan_kmalloc when KASAN is on (unpoison the object's granules, redzone the rest).
 *   kfree(obj), as ops._free_step's phase 0:
 *     classify_free: ZERO_OR_NULL check, pfn = addr >> PAGE_SHIFT, pfn range check,
 *       compound_head, PG_SLAB in the page's flags; the page's slab cache;
 *     check_free: object_index (offset from the slab's s_mem, a multiple of the object
 *       size: one integer division, below page->objects or cachep->num), and with KASAN
 *       the double-free check on the object's shadow byte;
 *     kasan_slab_free when KASAN is on (poison the slot);
 *     SLUB slab_free_fast: page == c->page, store c->freelist into the object, push,
 *       tid += TID_STEP, stat(FREE_FASTPATH)++;
 *     SLAB __cache_free: (2 nodes) cache_free_alien's node check, ac->avail < ac->limit,
 *       stat(FREEHIT)++, ac->entry[ac->avail++] = obj.
 * Tables are int64 words as in the emulator's arena (struct page, kmem_cache,
 * kmem_cache_cpu, array_cache rows), emulated RAM a byte array holding the free
 * pointers, the KASAN shadow one byte per 8 bytes.  Geometry (page shift, object size,
 * offset, TID_STEP, the KASAN switch) is read from the tables at run time, as the
 * emulator does, never a compile-time constant.
 *
 * slub_nrt_model is a diagnostic: the same SLUB work split into the emulator's
 * out-of-line functions (kmalloc_node, cache_alloc, slab_alloc_node, kasan_kmalloc,
 * classify_free, check_free, kasan_slab_free), each taking a reference-counted handle
 * and doing what numba's NRT does for a StructRef argument: an out-of-line atomic
 * increment at entry and an out-of-line atomic decrement at exit.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

enum { SLUB = 0, SLAB = 1 };
#define NUMA_NO_NODE (-1)
#define ZERO_SIZE_PTR 16
#define PG_SLAB (1 << 1) /* structs.PG_SLAB */
#define PG_TAIL (1 << 3) /* structs.PG_TAIL */
#define FC_OBJECTS_SHIFT 32
#define MAX_OBJS_PER_PAGE 32767
#define KASAN_KMALLOC_REDZONE 0xFC
#define KASAN_KMALLOC_FREE 0xFB

#define NR_CPUS 4
#define NR_NODES 2
#define NR_PFNS 64
#define PAGE_SIZE 4096
#define MAX_CACHES 8
#define AC_WIDTH 481
#define NR_STATS 32

/* one cache line per row, as the emulator's tables */
struct machine { int64_t page_shift, nr_cpus, nr_nodes, nr_pfns, kasan, tid_step, pad[2]; };
struct page { int64_t flags, slab_cache, freelist, s_mem, node, compound_head, pad[2]; };
struct kmem_cache { int64_t allocator, size, object_size, offset, objects, limit, pad[2]; };
struct kmem_cache_cpu { int64_t freelist, page, tid, partial, stat[NR_STATS]; };
struct array_cache { int64_t avail, limit, batchcount, touched, pad[4]; };
struct cpu { int64_t node, mem_node, pad[6]; };
/* stat items, as structs.SLUB_STAT_ITEMS and SLAB_STAT_ITEMS */
enum { ALLOC_FASTPATH = 0, FREE_FASTPATH = 2, ALLOCHIT = 0, FREEHIT = 2 };

struct machine machine;
struct page page[NR_PFNS];
struct kmem_cache kmem_cache[MAX_CACHES];
struct kmem_cache_cpu kmem_cache_cpu[MAX_CACHES * NR_CPUS];
struct array_cache array_cache[MAX_CACHES * NR_CPUS];
int64_t ac_entry[MAX_CACHES * NR_CPUS][AC_WIDTH];
struct cpu cpus[NR_CPUS];
int64_t kmalloc_map[24 + 32];
int64_t kasan_reports;
uint8_t ram[NR_PFNS * PAGE_SIZE] __attribute__((aligned(64)));
uint8_t shadow[NR_PFNS * PAGE_SIZE / 8];

static inline int64_t get_freepointer(const struct kmem_cache *s, int64_t obj) {
    int64_t v;
    memcpy(&v, ram + obj + s->offset, 8);
    return v;
}

static inline void set_freepointer(const struct kmem_cache *s, int64_t obj, int64_t fp) {
    memcpy(ram + obj + s->offset, &fp, 8);
}

/* -- kmalloc_slab ----------------------------------------------------------------- */
static inline int64_t kmalloc_slab(int64_t size) {
    int64_t idx;
    if (size <= 0)
        return -1;
    if (size <= 192) {
        idx = kmalloc_map[(size - 1) >> 3];
    } else {
        idx = 0;
        for (int64_t v = size - 1; v; v >>= 1)
            idx++;
    }
    if (idx < 0 || idx >= 32)
        return -1;
    return kmalloc_map[24 + idx];
}

/* -- KASAN ------------------------------------------------------------------------ */
static inline void kasan_poison(int64_t addr, int64_t size, uint8_t value) {
    for (int64_t i = addr >> 3; i < (addr + size) >> 3; i++)
        shadow[i] = value;
}

static inline void kasan_unpoison(int64_t addr, int64_t size) {
    int64_t end = (addr + size) >> 3;
    for (int64_t i = addr >> 3; i < end; i++)
        shadow[i] = 0;
    if (size & 7)
        shadow[end] = (uint8_t)(size & 7);
}

static inline void kasan_kmalloc(const struct kmem_cache *s, int64_t obj, int64_t size) {
    if (machine.kasan == 0)
        return;
    int64_t slot = s->size;
    kasan_unpoison(obj, size);
    int64_t start = (size + 7) & ~7;
    if (start < slot)
        kasan_poison(obj + start, slot - start, KASAN_KMALLOC_REDZONE);
}

static inline void kasan_slab_free(const struct kmem_cache *s, int64_t obj) {
    if (machine.kasan == 0)
        return;
    kasan_poison(obj, s->size, KASAN_KMALLOC_FREE);
}

/* -- SLUB ------------------------------------------------------------------------- */
static inline int64_t slub_alloc(int64_t s_row, int64_t node, int64_t size, int64_t cpu) {
    const struct kmem_cache *s = &kmem_cache[s_row];
    struct kmem_cache_cpu *c = &kmem_cache_cpu[s_row * machine.nr_cpus + cpu];
    int64_t tid = c->tid;
    int64_t obj = c->freelist;
    int64_t pg = c->page;
    if (obj == 0 || (node != NUMA_NO_NODE && page[pg].node != node))
        return 0; /* __slab_alloc: never reached here */
    int64_t next = get_freepointer(s, obj);
    if (c->freelist == obj && c->tid == tid) {
        c->freelist = next;
        c->tid = tid + machine.tid_step;
        c->stat[ALLOC_FASTPATH]++;
    } else {
        return 0;
    }
    kasan_kmalloc(s, obj, size);
    return obj;
}

static inline int slub_free_fast(int64_t s_row, int64_t pfn, int64_t obj, int64_t cpu) {
    const struct kmem_cache *s = &kmem_cache[s_row];
    struct kmem_cache_cpu *c = &kmem_cache_cpu[s_row * machine.nr_cpus + cpu];
    if (c->page != pfn)
        return 0;
    int64_t tid = c->tid;
    set_freepointer(s, obj, c->freelist);
    c->freelist = obj;
    c->tid = tid + machine.tid_step;
    c->stat[FREE_FASTPATH]++;
    return 1;
}

/* -- SLAB ------------------------------------------------------------------------- */
static inline int64_t slab_alloc(int64_t s_row, int64_t node, int64_t size, int64_t cpu) {
    int64_t me = cpus[cpu].mem_node;
    if (node != NUMA_NO_NODE && node != me)
        return 0; /* ____cache_alloc_node: never reached here */
    int64_t row = s_row * machine.nr_cpus + cpu;
    struct array_cache *ac = &array_cache[row];
    int64_t avail = ac->avail;
    if (avail <= 0)
        return 0; /* cache_alloc_refill: never reached here */
    ac->touched = 1;
    kmem_cache_cpu[row].stat[ALLOCHIT]++;
    ac->avail = avail - 1;
    int64_t obj = ac_entry[row][avail - 1];
    kasan_kmalloc(&kmem_cache[s_row], obj, size);
    return obj;
}

static inline int slab_cache_free(int64_t s_row, int64_t obj, int64_t pfn, int64_t cpu) {
    if (machine.nr_nodes > 1 && page[pfn].node != cpus[cpu].mem_node)
        return 0; /* cache_free_alien: never reached here */
    int64_t row = s_row * machine.nr_cpus + cpu;
    struct array_cache *ac = &array_cache[row];
    if (ac->avail < ac->limit)
        kmem_cache_cpu[row].stat[FREEHIT]++;
    else
        return 0; /* cache_flusharray: never reached here */
    int64_t avail = ac->avail;
    ac_entry[row][avail] = obj;
    ac->avail = avail + 1;
    return 1;
}

/* -- kmalloc / kfree -------------------------------------------------------------- */
static inline int64_t kmalloc_node(int64_t size, int64_t node, int64_t cpu) {
    int64_t s = kmalloc_slab(size);
    if (s < 0)
        return 0; /* kmalloc_large_node: never reached here */
    if (kmem_cache[s].allocator == SLAB)
        return slab_alloc(s, node, size, cpu);
    return slub_alloc(s, node, size, cpu);
}

/* classify_free + check_free: the slab pfn of a good slab object, or -1 */
static inline int64_t kfree_check(int64_t addr) {
    if (addr <= ZERO_SIZE_PTR)
        return -1;
    int64_t shift = machine.page_shift;
    int64_t pfn = addr >> shift;
    if (pfn <= 0 || pfn >= machine.nr_pfns)
        return -1;
    if (page[pfn].flags & PG_TAIL)
        pfn = page[pfn].compound_head;
    if ((page[pfn].flags & PG_SLAB) == 0)
        return -1;
    const struct kmem_cache *s = &kmem_cache[page[pfn].slab_cache];
    int64_t off = addr - (pfn << shift) - page[pfn].s_mem;
    int64_t size = s->size;
    if (off < 0 || off % size != 0)
        return -1;
    int64_t objects = s->allocator == SLUB
        ? (page[pfn].freelist >> FC_OBJECTS_SHIFT) & MAX_OBJS_PER_PAGE : s->objects;
    if (off / size >= objects)
        return -1;
    if (machine.kasan != 0 && shadow[addr >> 3] == KASAN_KMALLOC_FREE)
        return -1; /* double free */
    return pfn;
}

static inline int kfree(int64_t addr, int64_t cpu) {
    int64_t pfn = kfree_check(addr);
    if (pfn < 0) {
        kasan_reports++;
        return 0;
    }
    int64_t s = page[pfn].slab_cache;
    kasan_slab_free(&kmem_cache[s], addr);
    if (kmem_cache[s].allocator == SLAB)
        return slab_cache_free(s, addr, pfn, cpu);
    return slub_free_fast(s, pfn, addr, cpu);
}

/* -- the NRT model (diagnostic) --------------------------------------------------- */
struct handle { int64_t refcnt; };
struct handle mem_handle = {1};

NOINLINE void NRT_incref(struct handle *h) { __atomic_fetch_add(&h->refcnt, 1, __ATOMIC_RELAXED); }
NOINLINE void NRT_decref(struct handle *h) {
    if (__atomic_fetch_sub(&h->refcnt, 1, __ATOMIC_RELEASE) == 1)
        abort();
}

NOINLINE void m_kasan_kmalloc(struct handle *h, int64_t s, int64_t obj, int64_t size) {
    NRT_incref(h);
    kasan_kmalloc(&kmem_cache[s], obj, size);
    NRT_decref(h);
}

NOINLINE int64_t m_slab_alloc_node(struct handle *h, int64_t s_row, int64_t node,
                                   int64_t size, int64_t cpu) {
    NRT_incref(h);
    struct kmem_cache_cpu *c = &kmem_cache_cpu[s_row * machine.nr_cpus + cpu];
    int64_t tid = c->tid, obj = c->freelist, pg = c->page;
    if (obj == 0 || (node != NUMA_NO_NODE && page[pg].node != node)) {
        NRT_decref(h);
        return 0;
    }
    int64_t next = get_freepointer(&kmem_cache[s_row], obj);
    if (c->freelist == obj && c->tid == tid) {
        c->freelist = next;
        c->tid = tid + machine.tid_step;
        c->stat[ALLOC_FASTPATH]++;
    }
    m_kasan_kmalloc(h, s_row, obj, size);
    NRT_decref(h);
    return obj;
}

NOINLINE int64_t m_cache_alloc(struct handle *h, int64_t s, int64_t node, int64_t size, int64_t cpu) {
    NRT_incref(h);
    int64_t obj = kmem_cache[s].allocator == SLAB ? slab_alloc(s, node, size, cpu)
                                                  : m_slab_alloc_node(h, s, node, size, cpu);
    NRT_decref(h);
    return obj;
}

NOINLINE int64_t m_kmalloc_node(struct handle *h, int64_t size, int64_t node, int64_t cpu) {
    NRT_incref(h);
    int64_t s = kmalloc_slab(size);
    int64_t obj = s < 0 ? 0 : m_cache_alloc(h, s, node, size, cpu);
    NRT_decref(h);
    return obj;
}

NOINLINE int64_t m_classify_free(struct handle *h, int64_t addr) {
    NRT_incref(h);
    int64_t pfn = -1;
    int64_t shift = machine.page_shift;
    if (addr > ZERO_SIZE_PTR) {
        pfn = addr >> shift;
        if (pfn <= 0 || pfn >= machine.nr_pfns) {
            pfn = -1;
        } else {
            if (page[pfn].flags & PG_TAIL)
                pfn = page[pfn].compound_head;
            if ((page[pfn].flags & PG_SLAB) == 0)
                pfn = -1;
        }
    }
    NRT_decref(h);
    return pfn;
}

NOINLINE int m_check_free(struct handle *h, int64_t s_row, int64_t pfn, int64_t addr) {
    NRT_incref(h);
    const struct kmem_cache *s = &kmem_cache[s_row];
    int ok = 1;
    int64_t off = addr - (pfn << machine.page_shift) - page[pfn].s_mem;
    int64_t size = s->size;
    int64_t objects = s->allocator == SLUB
        ? (page[pfn].freelist >> FC_OBJECTS_SHIFT) & MAX_OBJS_PER_PAGE : s->objects;
    if (off < 0 || off % size != 0 || off / size >= objects)
        ok = 0;
    else if (machine.kasan != 0 && shadow[addr >> 3] == KASAN_KMALLOC_FREE)
        ok = 0;
    NRT_decref(h);
    return ok;
}

NOINLINE void m_kasan_slab_free(int64_t s, int64_t obj) { kasan_slab_free(&kmem_cache[s], obj); }

static inline int m_kfree(struct handle *h, int64_t addr, int64_t cpu) {
    int64_t pfn = m_classify_free(h, addr);
    if (pfn < 0)
        return 0;
    int64_t s = page[pfn].slab_cache;
    if (!m_check_free(h, s, pfn, addr))
        return 0;
    m_kasan_slab_free(s, addr);
    return slub_free_fast(s, pfn, addr, cpu);
}

/* -- setup ------------------------------------------------------------------------ */
static void setup(int allocator, int kasan) {
    memset(&machine, 0, sizeof machine);
    machine.page_shift = 12;
    machine.nr_cpus = NR_CPUS;
    machine.nr_nodes = NR_NODES;
    machine.nr_pfns = NR_PFNS;
    machine.kasan = kasan;
    machine.tid_step = NR_CPUS; /* roundup_pow_of_two(nr_cpus) */
    for (int i = 0; i < NR_CPUS; i++)
        cpus[i].node = cpus[i].mem_node = i / (NR_CPUS / NR_NODES);
    /* kmalloc-64 in cache row 3; size_index for sizes 57..64 -> index 6 */
    for (int i = 0; i < 24 + 32; i++)
        kmalloc_map[i] = -1;
    for (int i = 0; i < 24; i++)
        kmalloc_map[i] = 6;
    int64_t s = 3;
    kmalloc_map[24 + 6] = s;
    struct kmem_cache *k = &kmem_cache[s];
    k->allocator = allocator;
    k->size = k->object_size = 64;
    k->offset = 0;
    k->objects = PAGE_SIZE / 64;
    k->limit = 120;
    int64_t pfn = 5, cpu = 0;
    struct page *p = &page[pfn];
    p->flags = PG_SLAB;
    p->slab_cache = s;
    p->node = 0;
    p->s_mem = 0;
    p->freelist = (int64_t)k->objects << FC_OBJECTS_SHIFT;
    int64_t base = pfn << machine.page_shift;
    memset(shadow, kasan ? KASAN_KMALLOC_FREE : 0, sizeof shadow);
    if (allocator == SLUB) {
        /* the cpu slab: every object on c->freelist, the page frozen for CPU 0 */
        for (int64_t i = 0; i < k->objects; i++)
            set_freepointer(k, base + i * 64, i + 1 < k->objects ? base + (i + 1) * 64 : 0);
        struct kmem_cache_cpu *c = &kmem_cache_cpu[s * NR_CPUS + cpu];
        c->freelist = base;
        c->page = pfn;
        c->tid = cpu;
    } else {
        struct array_cache *ac = &array_cache[s * NR_CPUS + cpu];
        ac->limit = k->limit;
        ac->batchcount = 60;
        ac->avail = 60;
        for (int64_t i = 0; i < 60; i++)
            ac_entry[s * NR_CPUS + cpu][i] = base + i * 64;
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t run_pairs(int64_t n, int64_t *bad) {
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        int64_t obj = kmalloc_node(64, NUMA_NO_NODE, 0);
        *bad += !kfree(obj, 0);
    }
    return now_ns() - t0;
}

static int64_t run_pairs_nrt(int64_t n, int64_t *bad) {
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        int64_t obj = m_kmalloc_node(&mem_handle, 64, NUMA_NO_NODE, 0);
        *bad += !m_kfree(&mem_handle, obj, 0);
    }
    return now_ns() - t0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s slub|slub_kasan|slab|slab_kasan|slub_nrt_model ITERS REPS\n",
                argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int64_t n = atoll(argv[2]);
    int reps = atoi(argv[3]);
    int nrt = strcmp(mode, "slub_nrt_model") == 0;
    int allocator = strncmp(mode, "slab", 4) == 0 ? SLAB : SLUB;
    int kasan = strstr(mode, "kasan") != NULL;
    if (!nrt && strcmp(mode, "slub") && strcmp(mode, "slub_kasan") && strcmp(mode, "slab")
        && strcmp(mode, "slab_kasan")) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    setup(allocator, kasan);
    int64_t bad = 0;
    int64_t s_row = 3, c_row = s_row * NR_CPUS;
    nrt ? run_pairs_nrt(n / 10 + 1, &bad) : run_pairs(n / 10 + 1, &bad); /* warm up */
    int64_t before = kmem_cache_cpu[c_row].stat[ALLOC_FASTPATH];
    for (int r = 0; r < reps; r++)
        printf("%lld\n", (long long)(nrt ? run_pairs_nrt(n, &bad) : run_pairs(n, &bad)));
    int64_t hits = kmem_cache_cpu[c_row].stat[ALLOC_FASTPATH] - before;
    if (bad || kasan_reports || hits != n * reps) {
        fprintf(stderr, "fast path missed: %lld bad frees, %lld reports, %lld hits of %lld\n",
                (long long)bad, (long long)kasan_reports, (long long)hits, (long long)(n * reps));
        return 1;
    }
    return 0;
}
