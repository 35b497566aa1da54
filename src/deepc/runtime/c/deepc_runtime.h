/* deepc_runtime.h: the thread pool and memory helpers that deepc's compiled kernels call.
 *
 * Every CPU bundle links one copy of this runtime into lib/model.so, so a C program on the
 * device needs nothing else. Plain C11 plus POSIX threads; builds for x86-64, AArch64, ARMv7.
 */
#ifndef DEEPC_RUNTIME_H
#define DEEPC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One chunk of a parallel loop: run iterations [begin, end) with the loop's context. */
typedef void (*deepc_task_fn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) and returns when all is done. The range is cut into one contiguous
 * share per thread and each share into a few blocks (one fn call each); a thread runs the
 * blocks of its own share first (the caller's share starts at 0), then helps with the others.
 * A call made from inside a task, or while another thread is using the pool, runs serially
 * on the calling thread (one call over [0, n)). n <= 0 does nothing. */
void deepc_parallel_for(deepc_task_fn fn, void *ctx, int64_t n);

/* Threads a parallel_for uses, the caller included. n <= 0 means all cores available to the
 * process. Before the first call the count comes from the environment variable
 * DEEPC_NUM_THREADS, else all cores. */
void deepc_set_num_threads(int32_t n);
int32_t deepc_get_num_threads(void);

/* Stops and joins the worker threads (they restart on the next parallel_for). Runs by itself
 * when the library is unloaded; call it to release the threads earlier. */
void deepc_shutdown(void);

/* size bytes aligned to `alignment` (a power of two; 64 if 0), or NULL; release with
 * deepc_aligned_free. */
void *deepc_aligned_alloc(size_t size, size_t alignment);
void deepc_aligned_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* DEEPC_RUNTIME_H */
