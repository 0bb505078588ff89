/* loop: epoll + a short list of armed timers.
 *
 * A process arms only a handful of timers (heartbeat tick, watcher retry,
 * ping tick): per-connection deadlines are kept by the owners in ordered
 * lists and checked from one tick, so a linear scan here is cheapest. */
#include "loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Events taken per epoll_wait: enough for fairness, small enough to bound
 * the time before timers and the after-hook run again. */
#define LOOP_MAX_EVENTS 256

struct loop {
    int epfd;
    bool is_stopping;
    uint64_t now_ms;
    struct loop_timer *armed;
    loop_after_fn *after;
    void *after_ctx;
};

uint64_t loop_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
    struct loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    loop->now_ms = loop_clock_ms();
    return loop;
}

void loop_free(struct loop *loop)
{
    if (loop == NULL)
        return;
    close(loop->epfd);
    free(loop);
}

static int ctl(struct loop *loop, int op, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) != 0)
        return -1;
    io->events = events;
    return 0;
}

int loop_io_add(struct loop *loop, struct loop_io *io, uint32_t events)
{
    return ctl(loop, EPOLL_CTL_ADD, io, events);
}

int loop_io_modify(struct loop *loop, struct loop_io *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    return ctl(loop, EPOLL_CTL_MOD, io, events);
}

void loop_io_remove(struct loop *loop, struct loop_io *io)
{
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->events = 0;
}

void loop_timer_cancel(struct loop *loop, struct loop_timer *timer)
{
    for (struct loop_timer **pp = &loop->armed; *pp != NULL; pp = &(*pp)->next_armed) {
        if (*pp == timer) {
            *pp = timer->next_armed;
            break;
        }
    }
    timer->due_ms = 0;
    timer->next_armed = NULL;
}

void loop_timer_arm(struct loop *loop, struct loop_timer *timer, uint64_t delay_ms)
{
    loop_timer_cancel(loop, timer);
    timer->due_ms = loop_clock_ms() + delay_ms;
    timer->next_armed = loop->armed;
    loop->armed = timer;
}

void loop_set_after(struct loop *loop, loop_after_fn *fn, void *ctx)
{
    loop->after = fn;
    loop->after_ctx = ctx;
}

uint64_t loop_now_ms(const struct loop *loop)
{
    return loop->now_ms;
}

static int next_timeout_ms(const struct loop *loop)
{
    if (loop->armed == NULL)
        return -1;
    uint64_t first = UINT64_MAX;
    for (const struct loop_timer *t = loop->armed; t != NULL; t = t->next_armed)
        if (t->due_ms < first)
            first = t->due_ms;
    uint64_t now = loop_clock_ms();
    return first <= now ? 0 : (int)(first - now > 60000 ? 60000 : first - now);
}

static void run_due_timers(struct loop *loop)
{
    /* A callback may re-arm its own or another timer: restart the scan
     * after each one rather than hold a pointer into the list. */
    for (;;) {
        struct loop_timer *due = NULL;
        for (struct loop_timer *t = loop->armed; t != NULL; t = t->next_armed)
            if (t->due_ms <= loop->now_ms && (due == NULL || t->due_ms < due->due_ms))
                due = t;
        if (due == NULL)
            return;
        loop_timer_cancel(loop, due);
        due->on_due(due);
    }
}

int loop_run(struct loop *loop)
{
    struct epoll_event events[LOOP_MAX_EVENTS];
    loop->is_stopping = false;
    while (!loop->is_stopping) {
        int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, next_timeout_ms(loop));
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "litepush: %s: epoll_wait: %s\n", __func__, strerror(errno));
            return -1;
        }
        loop->now_ms = loop_clock_ms();
        for (int i = 0; i < n; i++) {
            struct loop_io *io = events[i].data.ptr;
            io->on_ready(io, events[i].events);
        }
        run_due_timers(loop);
        if (loop->after)
            loop->after(loop->after_ctx);
    }
    return 0;
}

void loop_stop(struct loop *loop)
{
    loop->is_stopping = true;
}
