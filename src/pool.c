/* pool: see pool.h.
 *
 * Hand-off: a locked singly linked list per worker, appended at the tail,
 * and an eventfd that wakes the worker's loop; the worker takes the whole
 * list under the lock and adopts the items after releasing it. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "loop.h"
#include "store.h"

/* The watcher's retries wait 10-100 µs on a timerfd; the kernel may defer a
 * timer by the thread's slack (50 µs by default), so workers ask for 1 µs. */
#define WORKER_TIMER_SLACK_NS 1000UL

/* One event loop and the server it runs. The other threads touch only what
 * `lock` guards and wake_io.fd; the rest belongs to the worker's thread. */
struct worker {
    struct pool *pool;
    pthread_t thread;
    struct loop *loop;
    struct store *store;
    void *server;
    struct loop_io wake_io; /* eventfd */
    pthread_mutex_t lock;
    struct pool_item *head, *tail; /* handed over, not yet adopted */
    bool is_stopping;
};

struct pool {
    const struct pool_ops *ops;
    struct worker *workers;
    size_t worker_count;
    size_t started; /* threads running */
    atomic_ulong next_worker;
    struct loop *loop; /* the main thread's */
    struct loop_io signal_io;
    const char *prog;
    pool_signal_fn *on_usr1;
    void *usr1_ctx;
};

static void wake(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->wake_io.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        fprintf(stderr, "litepush: %s: eventfd: %s\n", __func__, strerror(errno));
}

static void on_wake(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct worker *w = LOOP_CONTAINER(io, struct worker, wake_io);
    uint64_t count;
    if (read(io->fd, &count, sizeof count) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&w->lock);
    struct pool_item *list = w->head;
    w->head = w->tail = NULL;
    bool is_stopping = w->is_stopping;
    pthread_mutex_unlock(&w->lock);
    while (list != NULL) {
        struct pool_item *item = list;
        list = item->next;
        w->pool->ops->adopt(w->server, item);
    }
    if (is_stopping)
        loop_stop(w->loop);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    prctl(PR_SET_TIMERSLACK, WORKER_TIMER_SLACK_NS, 0, 0, 0);
    loop_run(w->loop);
    w->pool->ops->server_free(w->server); /* ends every client cleanly */
    w->server = NULL;
    store_close(w->store);
    w->store = NULL;
    return NULL;
}

static bool worker_init(struct pool *pool, struct worker *w, const char *db, void *ctx, char *err,
                        size_t err_cap)
{
    w->pool = pool;
    pthread_mutex_init(&w->lock, NULL);
    w->loop = loop_new();
    w->wake_io =
        (struct loop_io){.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .on_ready = on_wake};
    if (w->loop == NULL || w->wake_io.fd < 0 || loop_io_add(w->loop, &w->wake_io, EPOLLIN) != 0) {
        snprintf(err, err_cap, "cannot set up an event loop: %s", strerror(errno));
        return false;
    }
    w->store = store_open(db, err, err_cap);
    if (w->store == NULL)
        return false;
    w->server = pool->ops->server_new(w->loop, w->store, ctx, err, err_cap);
    return w->server != NULL;
}

static void on_signal(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct pool *pool = LOOP_CONTAINER(io, struct pool, signal_io);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
            if (pool->on_usr1 != NULL)
                pool->on_usr1(pool->usr1_ctx);
        } else {
            fprintf(stderr, "%s: signal %u: closing connections and exiting\n", pool->prog,
                    si.ssi_signo);
            loop_stop(pool->loop);
        }
    }
}

struct pool *pool_new(size_t worker_count, const char *db, const struct pool_ops *ops, void *ctx,
                      char *err, size_t err_cap)
{
    struct pool *pool = calloc(1, sizeof *pool);
    struct worker *workers = calloc(worker_count, sizeof *workers);
    if (pool == NULL || workers == NULL) {
        snprintf(err, err_cap, "out of memory");
        free(pool);
        free(workers);
        return NULL;
    }
    *pool = (struct pool){.ops = ops, .workers = workers, .loop = loop_new()};
    /* Signals are blocked here, before any thread starts, so only the
     * main loop's signalfd sees them. */
    pool->signal_io = (struct loop_io){.fd = cli_signalfd(), .on_ready = on_signal};
    if (pool->loop == NULL || pool->signal_io.fd < 0 ||
        loop_io_add(pool->loop, &pool->signal_io, EPOLLIN) != 0) {
        snprintf(err, err_cap, "cannot set up the event loop: %s", strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < worker_count; i++) {
        pool->worker_count = i + 1;
        if (!worker_init(pool, &workers[i], db, ctx, err, err_cap))
            goto fail;
    }
    return pool;
fail:
    pool_free(pool);
    return NULL;
}

struct loop *pool_main_loop(struct pool *pool)
{
    return pool->loop;
}

bool pool_start(struct pool *pool, char *err, size_t err_cap)
{
    for (size_t i = 0; i < pool->worker_count; i++) {
        struct worker *w = &pool->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            snprintf(err, err_cap, "cannot start worker threads");
            return false;
        }
        pool->started = i + 1;
    }
    return true;
}

void pool_hand(struct pool *pool, struct pool_item *item)
{
    struct worker *w = &pool->workers[atomic_fetch_add(&pool->next_worker, 1) % pool->worker_count];
    item->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail != NULL)
        w->tail->next = item;
    else
        w->head = item;
    w->tail = item;
    pthread_mutex_unlock(&w->lock);
    wake(w);
}

int pool_run(struct pool *pool, const char *prog, pool_signal_fn *on_usr1, void *ctx)
{
    pool->prog = prog;
    pool->on_usr1 = on_usr1;
    pool->usr1_ctx = ctx;
    return loop_run(pool->loop);
}

void pool_stop(struct pool *pool)
{
    for (size_t i = 0; i < pool->started; i++) {
        struct worker *w = &pool->workers[i];
        pthread_mutex_lock(&w->lock);
        w->is_stopping = true;
        pthread_mutex_unlock(&w->lock);
        wake(w);
    }
    for (size_t i = 0; i < pool->started; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pool->started = 0;
}

void pool_free(struct pool *pool)
{
    if (pool == NULL)
        return;
    pool_stop(pool);
    for (size_t i = 0; i < pool->worker_count; i++) {
        struct worker *w = &pool->workers[i];
        if (w->server != NULL)
            pool->ops->server_free(w->server); /* its thread never ran */
        store_close(w->store);
        if (w->wake_io.fd >= 0)
            close(w->wake_io.fd);
        loop_free(w->loop);
        pthread_mutex_destroy(&w->lock);
    }
    if (pool->signal_io.fd >= 0)
        close(pool->signal_io.fd);
    loop_free(pool->loop);
    free(pool->workers);
    free(pool);
}
