#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

struct report {
    int fd;
    struct event *ev;
    report_gone_fn *on_gone;
    void *ctx;
    int gone;
    struct metrics_snapshot *snap; /* reused: no allocation per send */
};

/* libevent callback (loop context). The supervisor sends nothing yet:
 * readable means EOF or an error, i.e. it is gone. Anything else it might send
 * one day is read and ignored. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct report *r = arg;
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

    (void)what;
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    event_del(r->ev);
    r->gone = 1;
    r->on_gone(r->ctx);
}

struct report *report_open(struct event_base *base, report_gone_fn *on_gone,
                           void *ctx)
{
    const char *env = getenv("MJQ_PARENT_FD");
    struct report *r;
    char *end;
    long fd;

    if (env == NULL)
        return NULL;
    errno = 0;
    fd = strtol(env, &end, 10);
    unsetenv("MJQ_PARENT_FD");
    if (errno != 0 || end == env || *end != '\0' || fd < 0 || fd > 65535 ||
        fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0)
        return NULL;
    r = xcalloc(1, sizeof(*r));
    r->fd = (int)fd;
    r->on_gone = on_gone;
    r->ctx = ctx;
    r->snap = metrics_snapshot_new();
    r->ev = event_new(base, r->fd, EV_READ | EV_PERSIST, on_readable, r);
    event_add(r->ev, NULL);
    return r;
}

void report_send(struct report *r)
{
    unsigned char buf[METRICS_SNAPSHOT_MAX];
    size_t len;

    if (r == NULL || r->gone)
        return;
    metrics_snapshot_take(r->snap);
    len = metrics_snapshot_encode(r->snap, buf, sizeof(buf));
    /* EAGAIN: the supervisor is behind, drop this one. EPIPE and the
     * like: it is gone, which on_readable notices. */
    if (len > 0 && send(r->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
        errno != EAGAIN && errno != EWOULDBLOCK)
        log_debug("report to the supervisor: send failed (errno %d)", errno);
}

void report_free(struct report *r)
{
    if (r == NULL)
        return;
    event_free(r->ev);
    close(r->fd);
    metrics_snapshot_free(r->snap);
    free(r);
}
