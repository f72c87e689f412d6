#include "monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "queue_age.h"
#include "xmalloc.h"

/* Queue sampling period. */
#define SAMPLE_MS 1000
/* A sample unanswered this long means Redis does not answer (hiredis 0.14
 * has no command timeout): not ready. */
#define SAMPLE_STUCK_MS 5000

struct queue_stat {
    char *name;
    struct queue_age *hist;
    int sampled;
    long long depth;
    double age_s;
};

struct monitor_chan {
    struct monitor *m;
    struct monitor_chan *prev, *next; /* m->chans */
    int fd;                           /* our end */
    int child_fd;                     /* the worker's end until forked */
    struct event *ev;
    struct metrics_snapshot *last; /* the worker's latest snapshot */
};

struct monitor {
    struct event_base *base;
    const struct config *cfg;
    struct store *store;
    monitor_state_fn *state;
    void *ctx;
    struct admin *admin;
    char *listen; /* admin.listen being served, or NULL */
    char *host;   /* its host and port, to bind again after a failed
                   * reload */
    int port;
    struct event *tick;
    int64_t sample_sent; /* monotonic ms of the unanswered sample, or 0 */
    int stale;           /* the next sample reply is for the old queues */
    struct queue_stat *queues;
    size_t nqueues;
    struct metrics_snapshot *retired; /* totals of exited workers */
    struct metrics_snapshot *merged;  /* scratch for rendering */
    struct monitor_chan *chans;
    unsigned long long restarts;
    int warned_layout; /* a snapshot of another layout was logged */
};

/* ------------------------------------------------------------------ */
/* Queues.                                                              */

static void set_queues(struct monitor *m)
{
    struct queue_stat *old = m->queues;
    size_t nold = m->nqueues;

    m->nqueues = m->cfg->nqueues;
    m->queues = xcalloc(m->nqueues, sizeof(*m->queues));
    for (size_t i = 0; i < m->nqueues; i++) {
        struct queue_stat *q = &m->queues[i];

        q->name = xstrdup(m->cfg->queues[i]);
        for (size_t j = 0; j < nold; j++)
            if (old[j].hist != NULL && strcmp(old[j].name, q->name) == 0) {
                free(q->name);
                *q = old[j]; /* keeps its history and last sample */
                old[j].name = NULL;
                old[j].hist = NULL;
                break;
            }
        if (q->hist == NULL)
            q->hist = queue_age_new();
    }
    for (size_t j = 0; j < nold; j++) {
        free(old[j].name);
        queue_age_free(old[j].hist);
    }
    free(old);
}

/* store callback (loop context): a queue sample came back. */
static void on_sample(int rc, const long long *taken, const long long *depth,
                      size_t n, void *arg)
{
    struct monitor *m = arg;
    int64_t now = clock_mono_ms();

    m->sample_sent = 0;
    if (m->stale) {
        m->stale = 0; /* asked before a reload changed the queues */
        return;
    }
    if (rc != 0 || n != m->nqueues)
        return;
    for (size_t i = 0; i < n; i++) {
        struct queue_stat *q = &m->queues[i];
        int lower;

        queue_age_record(q->hist, now, taken[i], depth[i]);
        q->depth = depth[i];
        q->age_s = (double)queue_age_oldest_ms(q->hist, now, taken[i], depth[i],
                                               &lower) /
                   1000.0;
        q->sampled = 1;
    }
}

/* libevent timer callback (loop context), every SAMPLE_MS. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct monitor *m = arg;
    char **names;

    (void)fd;
    (void)what;
    if (m->sample_sent != 0 || !store_is_up(m->store) || m->nqueues == 0)
        return;
    names = xcalloc(m->nqueues, sizeof(char *));
    for (size_t i = 0; i < m->nqueues; i++)
        names[i] = m->queues[i].name;
    if (store_sample_queues(m->store, names, m->nqueues, on_sample, m) == 0)
        m->sample_sent = clock_mono_ms();
    free(names);
}

/* ------------------------------------------------------------------ */
/* Probes and metrics.                                                  */

static int health(void *arg, char *reason, size_t len)
{
    struct monitor *m = arg;
    struct monitor_state st;

    m->state(m->ctx, &st);
    if (st.running > 0)
        return 0;
    snprintf(reason, len,
             "no worker process running (%zu waiting to restart, %zu "
             "disabled by a fatal configuration%s)",
             st.waiting, st.disabled, st.draining ? ", draining" : "");
    return -1;
}

static int ready(void *arg, char *reason, size_t len)
{
    struct monitor *m = arg;
    struct monitor_state st;
    int64_t waited = m->sample_sent ? clock_mono_ms() - m->sample_sent : 0;

    m->state(m->ctx, &st);
    if (st.draining) {
        snprintf(reason, len, "draining: the workers are stopping");
        return -1;
    }
    if (!store_is_up(m->store)) {
        snprintf(reason, len, "redis unreachable");
        return -1;
    }
    if (waited > SAMPLE_STUCK_MS) {
        snprintf(reason, len, "redis not answering for %lld ms",
                 (long long)waited);
        return -1;
    }
    return 0;
}

char *monitor_metrics(struct monitor *m, size_t *len)
{
    struct metrics_queue *qs = xcalloc(m->nqueues + 1, sizeof(*qs));
    struct metrics_view v;
    struct monitor_state st;
    char *text;

    m->state(m->ctx, &st);
    metrics_snapshot_clear(m->merged);
    metrics_snapshot_add(m->merged, m->retired);
    for (struct monitor_chan *c = m->chans; c != NULL; c = c->next)
        metrics_snapshot_add(m->merged, c->last);
    for (size_t i = 0; i < m->nqueues; i++) {
        qs[i].name = m->queues[i].name;
        qs[i].sampled = m->queues[i].sampled;
        qs[i].depth = m->queues[i].depth;
        qs[i].oldest_age_s = m->queues[i].age_s;
    }
    memset(&v, 0, sizeof(v));
    v.version = MJQ_VERSION;
    v.workers = (long)st.running;
    v.restarts = m->restarts;
    v.draining = st.draining;
    v.redis_up = store_is_up(m->store);
    v.queues = qs;
    v.nqueues = m->nqueues;
    v.jobs = m->merged;
    text = metrics_render(&v, len);
    free(qs);
    return text;
}

static char *metrics_text(void *arg, size_t *len)
{
    return monitor_metrics(arg, len);
}

/* ------------------------------------------------------------------ */
/* Worker channels.                                                     */

/* Reads every queued snapshot, keeping the last one that decodes. */
static void drain_chan(struct monitor_chan *c)
{
    unsigned char buf[METRICS_SNAPSHOT_MAX];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        int rc;

        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 && c->ev != NULL)
            event_del(c->ev); /* EOF: the worker is exiting */
        if (n <= 0)
            return;
        rc = metrics_snapshot_decode(c->last, buf, (size_t)n);
        if (rc == -EPROTO && !c->m->warned_layout) {
            c->m->warned_layout = 1;
            log_warn("a worker sends metrics of another mjq version: "
                     "ignored until it is replaced");
        }
    }
}

/* libevent callback (loop context): a worker's channel is readable. */
static void on_chan(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain_chan(arg);
}

struct monitor_chan *monitor_chan_open(struct monitor *m)
{
    struct monitor_chan *c;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return NULL;
    c = xcalloc(1, sizeof(*c));
    c->m = m;
    c->fd = sv[0];
    c->child_fd = sv[1];
    c->last = metrics_snapshot_new();
    c->ev = event_new(m->base, c->fd, EV_READ | EV_PERSIST, on_chan, c);
    event_add(c->ev, NULL);
    c->next = m->chans;
    if (c->next != NULL)
        c->next->prev = c;
    m->chans = c;
    return c;
}

int monitor_chan_child_fd(const struct monitor_chan *c)
{
    return c->child_fd;
}

void monitor_chan_forked(struct monitor_chan *c)
{
    if (c->child_fd >= 0)
        close(c->child_fd);
    c->child_fd = -1;
}

void monitor_chan_close(struct monitor *m, struct monitor_chan *c)
{
    if (c == NULL)
        return;
    drain_chan(c);
    metrics_snapshot_retire(m->retired, c->last);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        m->chans = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    event_free(c->ev);
    close(c->fd);
    monitor_chan_forked(c);
    metrics_snapshot_free(c->last);
    free(c);
}

/* ------------------------------------------------------------------ */
/* Life cycle.                                                          */

struct monitor *monitor_new(struct event_base *base, const struct config *cfg,
                            struct store *store, monitor_state_fn *state,
                            void *ctx)
{
    struct monitor *m = xcalloc(1, sizeof(*m));
    struct timeval tv = {SAMPLE_MS / 1000, (SAMPLE_MS % 1000) * 1000};

    m->base = base;
    m->cfg = cfg;
    m->store = store;
    m->state = state;
    m->ctx = ctx;
    m->retired = metrics_snapshot_new();
    m->merged = metrics_snapshot_new();
    {
        const char *names[MJQ_MAX_ACCOUNTS];

        for (size_t i = 0; i < cfg->naccounts; i++)
            names[i] = cfg->accounts[i].name;
        metrics_set_accounts(names, cfg->naccounts);
    }
    set_queues(m);
    m->tick = event_new(base, -1, EV_PERSIST, on_tick, m);
    evtimer_add(m->tick, &tv);
    return m;
}

/* Serves the admin endpoint on host:port, in place of the one served
 * before if any. Returns 0, or -1 after logging why (nothing changed). */
static int serve(struct monitor *m, const char *listen, const char *host,
                 int port)
{
    struct admin_handlers h = {health, ready, metrics_text, m};
    struct admin *a;
    char err[256], *l, *hcopy;

    a = admin_start(m->base, host, port, &h, err, sizeof(err));
    if (a == NULL) {
        log_error("admin endpoint: cannot listen on %s: %s", listen, err);
        return -1;
    }
    l = xstrdup(listen); /* listen may be m->listen */
    hcopy = xstrdup(host);
    admin_free(m->admin);
    free(m->listen);
    free(m->host);
    m->admin = a;
    m->listen = l;
    m->host = hcopy;
    m->port = port;
    log_info("admin endpoint on http://%s (/healthz /readyz /metrics)",
             m->listen);
    return 0;
}

static void stop_serving(struct monitor *m)
{
    admin_free(m->admin);
    free(m->listen);
    free(m->host);
    m->admin = NULL;
    m->listen = m->host = NULL;
    m->port = 0;
}

int monitor_listen(struct monitor *m)
{
    if (m->cfg->admin_listen == NULL)
        return 0;
    return serve(m, m->cfg->admin_listen, m->cfg->admin_host,
                 m->cfg->admin_port);
}

/*
 * A reload changed admin.listen. A new port is bound before the old
 * socket closes, so the probes never find the endpoint gone; the same
 * port on another host can only be bound once the old socket is closed,
 * and then the old address is bound again if the new one fails.
 */
static void move_listener(struct monitor *m)
{
    const char *now = m->cfg->admin_listen;
    char *old_listen, *old_host;
    int old_port;

    if ((now == NULL && m->listen == NULL) ||
        (now != NULL && m->listen != NULL && strcmp(now, m->listen) == 0))
        return;
    if (now == NULL) {
        log_info("admin endpoint on http://%s closed (admin.listen is "
                 "now empty)",
                 m->listen);
        stop_serving(m);
        return;
    }
    if (m->admin == NULL || m->cfg->admin_port != m->port) {
        if (serve(m, now, m->cfg->admin_host, m->cfg->admin_port) != 0 &&
            m->admin != NULL)
            log_warn("admin endpoint: staying on http://%s", m->listen);
        return;
    }
    old_listen = xstrdup(m->listen);
    old_host = xstrdup(m->host);
    old_port = m->port;
    stop_serving(m);
    if (serve(m, now, m->cfg->admin_host, m->cfg->admin_port) != 0) {
        if (serve(m, old_listen, old_host, old_port) == 0)
            log_warn("admin endpoint: staying on http://%s", old_listen);
        else
            log_error("admin endpoint closed: neither %s nor %s could be "
                      "bound",
                      now, old_listen);
    }
    free(old_listen);
    free(old_host);
}

void monitor_restarted(struct monitor *m)
{
    m->restarts++;
}

void monitor_reconfigure(struct monitor *m)
{
    set_queues(m);
    if (m->sample_sent != 0)
        m->stale = 1; /* replies come in order: the next one is old */
    move_listener(m);
}

void monitor_free(struct monitor *m)
{
    if (m == NULL)
        return;
    while (m->chans != NULL)
        monitor_chan_close(m, m->chans);
    admin_free(m->admin);
    event_free(m->tick);
    for (size_t i = 0; i < m->nqueues; i++) {
        free(m->queues[i].name);
        queue_age_free(m->queues[i].hist);
    }
    free(m->queues);
    free(m->listen);
    free(m->host);
    metrics_snapshot_free(m->retired);
    metrics_snapshot_free(m->merged);
    free(m);
}
