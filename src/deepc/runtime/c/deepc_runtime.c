/* deepc_runtime.c: a low-latency pthread pool for deepc_parallel_for, plus aligned memory.
 *
 * Design (kernels may be a few microseconds long, and a sleeping thread may take hundreds of
 * microseconds to wake on a busy or virtualised machine, so nobody may wait for one):
 *  - Workers start lazily on the first parallel_for that can use them and stay alive.
 *  - A job's range is cut into one contiguous share per thread, and each share into a few
 *    blocks. A share's cursor (on a cache line of its own) says which block is next; a thread
 *    claims blocks of its own share first, front to back, then helps with the others' shares.
 *    So the caller never waits for a worker that has not started: it runs that worker's
 *    blocks itself, and waits at most for blocks already running.
 *  - The cursor holds the job's tag next to the position, and a claim is a compare-and-swap
 *    on both: a worker that wakes late, after its job ended, claims nothing.
 *  - Every worker owns a cache line holding its wake-up counter and sleeping flag. After
 *    spinning for a while (DEEPC_SPIN_US, default 300 us; none when there are more threads
 *    than cores) a worker sleeps on its condition variable; the caller signals it only when
 *    the worker said it sleeps. The caller waits for running blocks the same way.
 *  - The "announce, then re-check" handshakes (counter/sleeping, finished/caller_sleeping)
 *    rely on sequential consistency (seq_cst operations, or one seq_cst fence after a batch of
 *    release stores): of two threads that each store one flag and then load the other's, at
 *    least one sees the other's store, so no wake-up is lost.
 */
#define _GNU_SOURCE /* sched_getaffinity; also exposes POSIX when built with -std=c11 */

#include "deepc_runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 512
#define CACHE_LINE 128 /* two 64-byte lines: adjacent-line prefetchers pair them up */
#define DEFAULT_SPIN_US 300
#define BLOCKS_PER_SHARE 4       /* a late thread's share is run by the others block by block */
#define YIELD_EVERY 1023 /* spin iterations (minus one) between sched_yield calls */
#define MAX_RANGE (INT64_C(1) << 32) /* a cursor keeps the position in its low 32 bits */

typedef struct {
    _Alignas(CACHE_LINE) atomic_uint assigned; /* wake-ups sent to this worker so far */
    atomic_int sleeping;                        /* set while blocked (or about to block) */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int32_t index; /* its share of a job: 1 .. nworkers (the caller's is 0) */
} worker_t;

/* One thread's share [begin, end) of the current job. */
typedef struct {
    _Alignas(CACHE_LINE) atomic_uint_fast64_t cursor; /* job tag << 32 | next unclaimed index */
    /* job tag << 32 | the share's end. A thread still in the job before may read a cursor of
     * that job and then this job's end: the tag pairs each cursor with its own job's end */
    atomic_uint_fast64_t end;
    atomic_int_fast64_t block;    /* iterations per claim */
    atomic_int_fast64_t finished; /* iterations of the share done */
    int64_t size;                 /* end - begin; read by the caller only */
} share_t;

static struct {
    /* the current job: written before its cursors are published, fixed until it is done */
    deepc_task_fn fn;
    void *ctx;
    atomic_int nshares;
    atomic_uint tag;

    _Alignas(CACHE_LINE) atomic_int caller_sleeping;
    atomic_int stop;

    pthread_mutex_t done_lock;
    pthread_cond_t done;
    /* held by the one thread dispatching on the pool; on a line of its own, as every dispatch
     * writes it while the workers read caller_sleeping and stop */
    _Alignas(CACHE_LINE) pthread_mutex_t busy;

    worker_t *workers;
    share_t *shares;      /* nworkers + 1 */
    int32_t nworkers;     /* threads actually started (the caller is thread 0) */
    int32_t built_for;    /* the thread count the running pool was built for; 0: not running */
    atomic_int requested; /* the thread count parallel_for should use; 0: not resolved yet */
    int64_t spin_ns;
} P = {
    .done_lock = PTHREAD_MUTEX_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .busy = PTHREAD_MUTEX_INITIALIZER,
};

/* Set on worker threads, and on the caller while it runs chunks: nested calls run serially. */
static _Thread_local int tls_in_task;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until ready(arg); 0 when spin_ns ran out first. It yields the core now and then: a
 * thread it keeps from running (one woken onto this core, on a machine with other work) may
 * be the one it waits for. */
static int spin_until(int (*ready)(const void *), const void *arg, int64_t spin_ns) {
    int64_t deadline = 0;
    for (uint32_t i = 0;; i++) {
        if (ready(arg)) return 1;
        if ((i & 63) == 0) {
            int64_t t = now_ns();
            if (deadline == 0) deadline = t + spin_ns;
            else if (t >= deadline) return 0;
            if ((i & YIELD_EVERY) == 0 && i != 0) sched_yield();
        }
        cpu_relax();
    }
}

/* The integer in environment variable `name`, clamped to [lo, hi]; `fallback` if unset or bad. */
static long env_long(const char *name, long fallback, long lo, long hi) {
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') return fallback;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || v < lo) return fallback;
    return v > hi ? hi : v;
}

static int32_t available_cores(void) {
#ifdef __linux__
    /* the affinity mask respects taskset and cpusets, which the online count does not */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c > MAX_THREADS ? MAX_THREADS : c;
    }
#endif
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c < 1) return 1;
    return c > MAX_THREADS ? MAX_THREADS : (int32_t)c;
}

static int32_t requested_threads(void) {
    int32_t n = atomic_load(&P.requested);
    if (n == 0) {
        n = (int32_t)env_long("DEEPC_NUM_THREADS", 0, 1, MAX_THREADS);
        if (n == 0) n = available_cores();
        atomic_store(&P.requested, n);
    }
    return n;
}

/* Claims the next block of share `s` in job `tag`: its first index, and its length (0 when
 * the share is used up or the job is another one). The acquire that reads a cursor of this
 * job makes the job's fields (fn, ctx, end, block) visible. */
static int64_t claim(share_t *s, uint32_t tag, int64_t *begin) {
    uint_fast64_t c = atomic_load_explicit(&s->cursor, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(c >> 32) != tag) return 0;
        int64_t pos = (int64_t)(c & 0xffffffffu);
        uint_fast64_t e = atomic_load_explicit(&s->end, memory_order_relaxed);
        /* another job's end: job `tag` has ended (a share is posted again only then) */
        if ((uint32_t)(e >> 32) != tag) return 0;
        int64_t end = (int64_t)(e & 0xffffffffu);
        if (pos >= end) return 0;
        int64_t len = atomic_load_explicit(&s->block, memory_order_relaxed);
        if (len > end - pos) len = end - pos;
        if (atomic_compare_exchange_weak_explicit(&s->cursor, &c, c + (uint_fast64_t)len,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            *begin = pos;
            return len;
        }
    }
}

/* Runs blocks of job `tag` until none is left: share `first` first, then the others. Returns
 * whether it ran any. The job cannot end (nor its fields change) while a claimed block runs. */
static int work_on(uint32_t tag, int32_t first) {
    int32_t nshares = atomic_load_explicit(&P.nshares, memory_order_relaxed);
    int ran = 0;
    for (int32_t k = 0; k < nshares; k++) {
        share_t *s = &P.shares[(first + k) % nshares];
        int64_t begin, len;
        while ((len = claim(s, tag, &begin)) > 0) {
            P.fn(P.ctx, begin, begin + len);
            atomic_fetch_add(&s->finished, len); /* seq_cst: see wait_for_shares */
            ran = 1;
        }
    }
    return ran;
}

typedef struct {
    worker_t *w;
    unsigned seen;
} wake_arg;

static int woken(const void *arg) {
    const wake_arg *a = (const wake_arg *)arg;
    return atomic_load(&a->w->assigned) != a->seen;
}

static void *worker_main(void *arg) {
    wake_arg a = {(worker_t *)arg, 0};
    worker_t *w = a.w;
    tls_in_task = 1;
    for (;;) {
        if (!spin_until(woken, &a, P.spin_ns)) {
            pthread_mutex_lock(&w->lock);
            atomic_store(&w->sleeping, 1);
            while (!woken(&a)) pthread_cond_wait(&w->wake, &w->lock);
            atomic_store(&w->sleeping, 0);
            pthread_mutex_unlock(&w->lock);
        }
        a.seen = atomic_load(&w->assigned);
        if (atomic_load(&P.stop)) return NULL;
        /* the newest job, which may already be a later one than the wake-up was for */
        if (work_on(atomic_load_explicit(&P.tag, memory_order_acquire), w->index) &&
            atomic_load(&P.caller_sleeping)) {
            pthread_mutex_lock(&P.done_lock);
            pthread_cond_signal(&P.done);
            pthread_mutex_unlock(&P.done_lock);
        }
    }
}

/* Wakes the first `count` workers. The counters are release stores to distinct lines, so
 * their cache misses overlap, and one fence orders them all before the sleeping flags are
 * read. */
static void publish(int32_t count) {
    for (int32_t i = 0; i < count; i++) {
        worker_t *w = &P.workers[i];
        /* only the caller (one at a time, ordered by P.busy) writes the counter */
        unsigned next = atomic_load_explicit(&w->assigned, memory_order_relaxed) + 1u;
        atomic_store_explicit(&w->assigned, next, memory_order_release);
    }
    atomic_thread_fence(memory_order_seq_cst);
    for (int32_t i = 0; i < count; i++) {
        worker_t *w = &P.workers[i];
        if (atomic_load(&w->sleeping)) {
            pthread_mutex_lock(&w->lock);
            pthread_cond_signal(&w->wake);
            pthread_mutex_unlock(&w->lock);
        }
    }
}

static int shares_done(const void *arg) {
    (void)arg;
    int32_t nshares = atomic_load_explicit(&P.nshares, memory_order_relaxed);
    for (int32_t i = 0; i < nshares; i++)
        if (atomic_load(&P.shares[i].finished) != P.shares[i].size) return 0;
    return 1;
}

/* The caller has claimed all it could: only blocks already running remain. */
static void wait_for_shares(void) {
    if (spin_until(shares_done, NULL, P.spin_ns)) return;
    pthread_mutex_lock(&P.done_lock);
    atomic_store(&P.caller_sleeping, 1);
    while (!shares_done(NULL)) pthread_cond_wait(&P.done, &P.done_lock);
    atomic_store(&P.caller_sleeping, 0);
    pthread_mutex_unlock(&P.done_lock);
}

/* A forked child has none of the parent's worker threads: forget them. */
static void reset_after_fork(void) {
    free(P.workers); /* the threads are gone, so their mutexes are never used again */
    free(P.shares);
    P.workers = NULL;
    P.shares = NULL;
    P.nworkers = 0;
    P.built_for = 0;
    atomic_store(&P.stop, 0);
    atomic_store(&P.caller_sleeping, 0);
    pthread_mutex_init(&P.done_lock, NULL);
    pthread_cond_init(&P.done, NULL);
    pthread_mutex_init(&P.busy, NULL);
    tls_in_task = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_after_fork); }

/* Stops the workers; the caller holds P.busy. */
static void stop_pool(void) {
    if (P.built_for == 0) return;
    atomic_store(&P.stop, 1);
    publish(P.nworkers);
    for (int32_t i = 0; i < P.nworkers; i++) {
        pthread_join(P.workers[i].thread, NULL);
        pthread_mutex_destroy(&P.workers[i].lock);
        pthread_cond_destroy(&P.workers[i].wake);
    }
    free(P.workers);
    free(P.shares);
    P.workers = NULL;
    P.shares = NULL;
    P.nworkers = 0;
    P.built_for = 0;
    atomic_store(&P.stop, 0);
}

/* Starts threads-1 workers; the caller holds P.busy. Fewer start if the system refuses. */
static void start_pool(int32_t threads) {
    pthread_once(&atfork_once, register_atfork);
    /* spinning threads beyond the core count would only take time from the ones working */
    long spin_us = threads > available_cores() ? 0 : DEFAULT_SPIN_US;
    P.spin_ns = (int64_t)env_long("DEEPC_SPIN_US", spin_us, 0, 1000000) * 1000;
    P.built_for = threads;
    P.workers = (worker_t *)deepc_aligned_alloc(sizeof(worker_t) * (size_t)(threads - 1),
                                                CACHE_LINE);
    P.shares = (share_t *)deepc_aligned_alloc(sizeof(share_t) * (size_t)threads, CACHE_LINE);
    if (P.workers == NULL || P.shares == NULL) return;
    for (int32_t i = 0; i < threads; i++) {
        atomic_init(&P.shares[i].cursor, 0u);
        atomic_init(&P.shares[i].end, 0u);
        atomic_init(&P.shares[i].block, 1);
        atomic_init(&P.shares[i].finished, 0);
        P.shares[i].size = 0;
    }
    for (int32_t i = 0; i < threads - 1; i++) {
        worker_t *w = &P.workers[i];
        atomic_init(&w->assigned, 0u);
        atomic_init(&w->sleeping, 0);
        w->index = i + 1;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_mutex_destroy(&w->lock);
            pthread_cond_destroy(&w->wake);
            break;
        }
        P.nworkers = i + 1;
    }
}

/* Cuts [0, n) into `nshares` contiguous shares whose sizes differ by at most one, and tags
 * their cursors with the new job's tag, which publishes them. */
static uint32_t post_job(deepc_task_fn fn, void *ctx, int64_t n, int32_t nshares) {
    uint32_t tag = atomic_load_explicit(&P.tag, memory_order_relaxed) + 1u;
    if (tag == 0u) tag = 1u; /* 0 is the tag of no job */
    P.fn = fn;
    P.ctx = ctx;
    atomic_store_explicit(&P.nshares, nshares, memory_order_relaxed);
    int64_t q = n / nshares, r = n % nshares;
    for (int32_t i = 0; i < nshares; i++) {
        share_t *s = &P.shares[i];
        int64_t begin = i * q + (i < r ? i : r), size = q + (i < r ? 1 : 0);
        s->size = size;
        atomic_store_explicit(&s->end, (uint_fast64_t)tag << 32 | (uint_fast64_t)(begin + size),
                              memory_order_relaxed);
        atomic_store_explicit(&s->block, (size + BLOCKS_PER_SHARE - 1) / BLOCKS_PER_SHARE,
                              memory_order_relaxed);
        atomic_store_explicit(&s->finished, 0, memory_order_relaxed);
        atomic_store_explicit(&s->cursor, (uint_fast64_t)tag << 32 | (uint_fast64_t)begin,
                              memory_order_release);
    }
    atomic_store_explicit(&P.tag, tag, memory_order_release);
    return tag;
}

void deepc_parallel_for(deepc_task_fn fn, void *ctx, int64_t n) {
    if (n <= 0) return;
    int32_t requested = requested_threads();
    if (n == 1 || n >= MAX_RANGE || tls_in_task || requested == 1 ||
        pthread_mutex_trylock(&P.busy) != 0) {
        fn(ctx, 0, n);
        return;
    }
    if (P.built_for != requested) {
        stop_pool();
        start_pool(requested);
    }
    int64_t threads = P.shares == NULL ? 1 : (int64_t)P.nworkers + 1;
    int32_t nshares = (int32_t)(n < threads ? n : threads);
    if (nshares == 1) {
        pthread_mutex_unlock(&P.busy);
        fn(ctx, 0, n);
        return;
    }
    uint32_t tag = post_job(fn, ctx, n, nshares);
    publish(nshares - 1);
    tls_in_task = 1;
    work_on(tag, 0);
    tls_in_task = 0;
    wait_for_shares();
    pthread_mutex_unlock(&P.busy);
}

void deepc_set_num_threads(int32_t n) {
    if (n <= 0) n = available_cores();
    atomic_store(&P.requested, n > MAX_THREADS ? MAX_THREADS : n);
    /* inside a task the pool is in use: the next top-level call rebuilds it */
    if (tls_in_task) return;
    pthread_mutex_lock(&P.busy);
    if (P.built_for != atomic_load(&P.requested)) stop_pool();
    pthread_mutex_unlock(&P.busy);
}

int32_t deepc_get_num_threads(void) { return requested_threads(); }

void deepc_shutdown(void) {
    if (tls_in_task || pthread_mutex_trylock(&P.busy) != 0) return;
    stop_pool();
    pthread_mutex_unlock(&P.busy);
}

#if defined(__GNUC__) || defined(__clang__)
/* joins the workers before the library's code goes away (dlclose, or process exit) */
__attribute__((destructor)) static void deepc_runtime_fini(void) { deepc_shutdown(); }
#endif

void *deepc_aligned_alloc(size_t size, size_t alignment) {
    if (alignment == 0) alignment = 64;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if ((alignment & (alignment - 1)) != 0) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) return NULL;
    return p;
}

void deepc_aligned_free(void *ptr) { free(ptr); }
