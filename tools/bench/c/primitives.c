/* The C twin of tools/bench/primitives.py: the same primitives in C11, to compare.
 *
 *   usage: bench_primitives MODE ITERS REPS
 *   MODE   fetch_add   atomic_fetch_add_explicit(seq_cst) on an int64, result unused
 *          ttas        an uncontended test-and-test-and-set lock + unlock:
 *                      cmpxchg (acquire) to take it, a release store of 0 to drop it
 *          clock       clock_gettime(CLOCK_MONOTONIC), per call
 *   Prints REPS lines, each the elapsed nanoseconds of one timed loop of ITERS ops
 *   (the Python side divides and takes the median/min).  The loops are timed with
 *   clock_gettime(CLOCK_MONOTONIC), like the numba side's monotonic_ns().
 *
 * Build: cc -O2 -std=c11 -o bench_primitives primitives.c
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Each word on its own cache line, as the emulator's padded rows. */
static _Alignas(128) _Atomic int64_t counter;
static _Alignas(128) _Atomic int64_t lock_word;
volatile int64_t sink; /* keeps the clock loop's results alive */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void ttas_lock(_Atomic int64_t *w, int64_t me)
{
    for (;;) {
        int64_t expected = 0;
        if (atomic_compare_exchange_strong_explicit(w, &expected, me, memory_order_acquire,
                                                    memory_order_relaxed))
            return;
        while (atomic_load_explicit(w, memory_order_relaxed) != 0)
            cpu_relax();
    }
}

static inline void ttas_unlock(_Atomic int64_t *w)
{
    atomic_store_explicit(w, 0, memory_order_release);
}

static int64_t run(const char *mode, int64_t iters)
{
    int64_t t0, t1;
    if (strcmp(mode, "fetch_add") == 0) {
        t0 = now_ns();
        for (int64_t i = 0; i < iters; i++)
            atomic_fetch_add_explicit(&counter, 1, memory_order_seq_cst);
        t1 = now_ns();
    } else if (strcmp(mode, "ttas") == 0) {
        t0 = now_ns();
        for (int64_t i = 0; i < iters; i++) {
            ttas_lock(&lock_word, 1);
            ttas_unlock(&lock_word);
        }
        t1 = now_ns();
    } else if (strcmp(mode, "clock") == 0) {
        int64_t s = 0;
        t0 = now_ns();
        for (int64_t i = 0; i < iters; i++)
            s += now_ns();
        t1 = now_ns();
        sink = s;
    } else {
        return -1;
    }
    return t1 - t0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s fetch_add|ttas|clock ITERS REPS\n", argv[0]);
        return 2;
    }
    int64_t iters = strtoll(argv[2], NULL, 10);
    int reps = atoi(argv[3]);
    if (iters <= 0 || reps <= 0) {
        fprintf(stderr, "ITERS and REPS must be positive\n");
        return 2;
    }
    if (run(argv[1], iters / 10 + 1) < 0) { /* warm-up; also validates MODE */
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    for (int r = 0; r < reps; r++)
        printf("%lld\n", (long long)run(argv[1], iters));
    return 0;
}
