#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "xmalloc.h"

/* Idle connections are closed after this; probes reconnect anyway. */
#define IDLE_TIMEOUT_S 10
/* Requests are bodiless GETs: anything larger is refused by evhttp. */
#define MAX_HEADERS 8192
#define MAX_BODY    1024

struct admin {
    struct evhttp *http;
    struct admin_handlers h;
    int port;
};

static void reply(struct evhttp_request *req, int code, const char *status,
                  const char *type, const char *text, size_t len)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();

    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(out, "Content-Type", type);
    evhttp_add_header(out, "Cache-Control", "no-store");
    evbuffer_add(body, text, len);
    evhttp_send_reply(req, code, status, body);
    evbuffer_free(body);
}

static void reply_text(struct evhttp_request *req, int code, const char *status,
                       const char *line)
{
    char text[300];
    int n = snprintf(text, sizeof(text), "%s\n", line);

    reply(req, code, status, "text/plain; charset=utf-8", text,
          n > 0 && (size_t)n < sizeof(text) ? (size_t)n : strlen(text));
}

static void probe(struct evhttp_request *req, admin_probe_fn *fn, void *ctx)
{
    char reason[256] = "";

    if (fn(ctx, reason, sizeof(reason)) == 0)
        reply_text(req, 200, "OK", "ok");
    else
        reply_text(req, 503, "Service Unavailable", reason);
}

/* evhttp callback (loop context), every request: route on the path (the
 * query string is ignored). */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    int known;

    if (path == NULL || path[0] == '\0')
        path = "/";
    known = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
            strcmp(path, "/metrics") == 0;
    if (!known) {
        reply_text(req, 404, "Not Found",
                   "not found: try /healthz, /readyz or /metrics");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          "GET");
        reply_text(req, 405, "Method Not Allowed", "method not allowed: GET");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        probe(req, a->h.health, a->h.ctx);
    } else if (strcmp(path, "/readyz") == 0) {
        probe(req, a->h.ready, a->h.ctx);
    } else {
        size_t len = 0;
        char *text = a->h.metrics(a->h.ctx, &len);

        reply(req, 200, "OK", "text/plain; version=0.0.4", text, len);
        free(text);
    }
}

/* A listening socket on host:port, CLOEXEC and non-blocking, or -errno
 * with the step that failed in err. */
static int listen_on(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char service[16];
    int rc, fd = -1, saved = EADDRNOTAVAIL;
    const char *step = "bind";

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            step = "socket";
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            if (listen(fd, 128) == 0)
                break;
            step = "listen";
        } else {
            step = "bind";
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", step, strerror(saved));
        return -saved;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

struct admin *admin_start(struct event_base *base, const char *host, int port,
                          const struct admin_handlers *h, char *err,
                          size_t errlen)
{
    struct admin *a;
    int fd = listen_on(host, port, err, errlen);

    if (fd < 0)
        return NULL;
    a = xcalloc(1, sizeof(*a));
    a->h = *h;
    a->port = bound_port(fd);
    a->http = evhttp_new(base);
    if (a->http == NULL) {
        snprintf(err, errlen, "cannot create the HTTP server");
        close(fd);
        free(a);
        return NULL;
    }
    /* Every method reaches on_request, which answers 405 itself. */
    evhttp_set_allowed_methods(
        a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                     EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_timeout(a->http, IDLE_TIMEOUT_S);
    evhttp_set_max_headers_size(a->http, MAX_HEADERS);
    evhttp_set_max_body_size(a->http, MAX_BODY);
    evhttp_set_gencb(a->http, on_request, a);
    /* The listener owns fd from here (closed with the server). On failure
     * libevent may have closed it already, so it is not closed again. */
    if (evhttp_accept_socket_with_handle(a->http, fd) == NULL) {
        snprintf(err, errlen, "cannot accept on the socket");
        evhttp_free(a->http);
        free(a);
        return NULL;
    }
    return a;
}

int admin_port(const struct admin *a)
{
    return a->port;
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    evhttp_free(a->http);
    free(a);
}
