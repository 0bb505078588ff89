/* loop: a small epoll reactor with timers, one per event-loop thread.
 * Callers embed a struct loop_io (or struct loop_timer) in their own
 * connection struct and get it back in the callback; the loop allocates
 * nothing per fd. A callback may close any connection, but it must only
 * mark it and free it in the after-batch hook (loop_set_after), because
 * later events of the same epoll batch may still name it.
 * The caller owns every loop_io/loop_timer and must remove it before
 * freeing it. All functions are for the loop's own thread, except
 * loop_wake_fd writes, which any thread may do. */
#ifndef LITEPUSH_LOOP_H
#define LITEPUSH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

/* From a pointer to an embedded member back to its containing struct. */
#define LOOP_CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct loop;
struct loop_io;
struct loop_timer;

typedef void loop_io_fn(struct loop_io *io, uint32_t events);
typedef void loop_timer_fn(struct loop_timer *timer);
typedef void loop_after_fn(void *ctx);

struct loop_io {
    int fd;
    uint32_t events; /* what is registered now (EPOLLIN, EPOLLOUT, ...) */
    loop_io_fn *on_ready;
};

struct loop_timer {
    uint64_t due_ms; /* on loop_now_ms's clock; 0 = not armed */
    loop_timer_fn *on_due;
    struct loop_timer *next_armed;
};

/* NULL on failure (errno set). */
struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Register, change or remove an fd. Return 0 or -1 with errno. */
int loop_io_add(struct loop *loop, struct loop_io *io, uint32_t events);
int loop_io_modify(struct loop *loop, struct loop_io *io, uint32_t events);
void loop_io_remove(struct loop *loop, struct loop_io *io);

/* Arms (or re-arms) a one-shot timer to fire after delay_ms. */
void loop_timer_arm(struct loop *loop, struct loop_timer *timer, uint64_t delay_ms);
void loop_timer_cancel(struct loop *loop, struct loop_timer *timer);

/* Called after each batch of ready events and timers: the safe point to
 * free connections marked closing and to flush deferred writes. */
void loop_set_after(struct loop *loop, loop_after_fn *fn, void *ctx);

/* Monotonic milliseconds, cached per batch. */
uint64_t loop_now_ms(const struct loop *loop);
/* Monotonic milliseconds, read now (any thread). */
uint64_t loop_clock_ms(void);

/* Runs until loop_stop. Returns 0, or -1 if epoll_wait fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif
