/* pool: the threads of both programs. One event-loop worker per CPU, each
 * with its own loop, store connection and server (the responder, or a
 * ws_server) made by the caller's pool_ops; new work (a FastCGI request, an
 * accepted socket) is handed to the workers in turn, first in first out;
 * the main thread runs a small loop of its own that waits for signals; and
 * one stop ends every loop, lets each server close its clients on its own
 * thread, and joins.
 *
 * Threads: pool_hand may be called from any thread; everything else is for
 * the main thread. Each worker has one lock, which guards its hand-off list
 * and stop flag only and is never held with another. */
#ifndef LITEPUSH_POOL_H
#define LITEPUSH_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct store;
struct pool;

/* One unit of work. Embed it in your own struct and get that back with
 * LOOP_CONTAINER (loop.h) in pool_ops.adopt. */
struct pool_item {
    struct pool_item *next;
};

struct pool_ops {
    /* Makes one worker's server on its loop and store (both borrowed; the
     * pool frees them after server_free). Called on the main thread before
     * the worker starts; from then on the server is the worker's. Returns
     * NULL with a one-line reason in err[err_cap]. */
    void *(*server_new)(struct loop *loop, struct store *store, void *ctx, char *err,
                        size_t err_cap);
    /* Takes one item on the worker's thread, and with it ownership. */
    void (*adopt)(void *server, struct pool_item *item);
    /* Ends every client cleanly and frees the server, on the worker's thread
     * once its loop has stopped. */
    void (*server_free)(void *server);
};

/* Called on the main thread for SIGUSR1 (log the counters). */
typedef void pool_signal_fn(void *ctx);

/* Takes over SIGTERM, SIGINT, SIGHUP and SIGUSR1 (cli_signalfd: call this
 * before any other thread starts, and after a library that installs its own
 * handlers), then makes worker_count workers, each with a store opened on
 * db (which creates the schema) and ops->server_new(loop, store, ctx).
 * Starts no thread yet. Returns NULL with a reason in err[err_cap]. */
struct pool *pool_new(size_t worker_count, const char *db, const struct pool_ops *ops, void *ctx,
                      char *err, size_t err_cap);

/* The main thread's loop, for a listener of the caller's (borrowed). */
struct loop *pool_main_loop(struct pool *pool);

/* Starts the worker threads. Returns false with a reason in err. */
bool pool_start(struct pool *pool, char *err, size_t err_cap);

/* Hands item to the next worker in turn and wakes it; the worker calls
 * ops->adopt(server, item) on its thread, in the order items were handed. */
void pool_hand(struct pool *pool, struct pool_item *item);

/* Runs the main loop until SIGTERM, SIGINT or SIGHUP (logged, named by
 * prog), calling on_usr1(ctx) for each SIGUSR1. Returns 0, or -1 when the
 * loop failed. */
int pool_run(struct pool *pool, const char *prog, pool_signal_fn *on_usr1, void *ctx);

/* Stops every worker: each server ends its clients and its store is closed
 * on the worker's own thread, then the threads are joined. Items handed
 * over before the stop are adopted first. pool_hand stays safe (what it
 * hands from now on is never adopted). */
void pool_stop(struct pool *pool);

/* Stops the pool if it runs, then frees it; no other thread may call
 * pool_hand any more. NULL is a no-op. */
void pool_free(struct pool *pool);

#endif
