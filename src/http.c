#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "xmalloc.h"

/* Responses larger than this are refused: MJ answers are kilobytes. */
#define HTTP_MAX_RESPONSE (16u * 1024 * 1024)
/* Idle easy handles kept for reuse. */
#define HTTP_POOL_MAX 32

struct http {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;       /* libcurl's single timeout */
    CURL *pool[HTTP_POOL_MAX]; /* idle easy handles */
    size_t npool;
    size_t in_flight;  /* transfers handed to libcurl */
    size_t max_active; /* cap on in_flight; 0: none */
    unsigned long long total;
    struct http_request *requests;              /* in flight, for http_free */
    struct http_request *wait_head, *wait_tail; /* FIFO beyond the cap */
    size_t waiting;
};

struct http_request {
    struct http *http;
    struct http_request *prev, *next; /* http->requests or the wait FIFO */
    int started;                      /* handed to libcurl */
    /* What to send, kept while the request waits for a transfer slot. */
    char *url;
    struct curl_slist *headers;
    int post;
    size_t len;
    long timeout_ms, connect_timeout_ms;
    CURL *easy;
    http_done_fn *cb;
    void *ctx;
    char *body; /* owned POST body, freed at the end */
    char *resp; /* response buffer */
    size_t resp_len, resp_cap;
    int too_large;
    long retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
};

/* Per-socket libevent watcher, attached with curl_multi_assign. */
struct http_sock {
    struct http *http;
    curl_socket_t fd;
    struct event *ev;
};

static void check_done(struct http *http);

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct http *http = arg;
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
                 ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;

    curl_multi_socket_action(http->multi, fd, action, &running);
    check_done(http);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct http *http = arg;
    int running;

    (void)fd;
    (void)what;
    curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(http);
}

/* CURLMOPT_TIMERFUNCTION: replace semantics; -1 deletes, 0 means "soon"
 * (never an inline socket_action: libcurl forbids re-entry here). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct http *http = userp;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(http->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(http->timer, &tv);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: keep one persistent event per socket. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    struct http *http = userp;
    struct http_sock *sock = socketp;
    short kind;
    short events;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sock != NULL) {
            event_free(sock->ev);
            free(sock);
            curl_multi_assign(http->multi, fd, NULL);
        }
        return 0;
    }
    kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
           ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (sock == NULL) {
        sock = xcalloc(1, sizeof(*sock));
        sock->http = http;
        sock->fd = fd;
        curl_multi_assign(http->multi, fd, sock);
    } else {
        events = event_get_events(sock->ev);
        if (events == kind)
            return 0; /* unchanged: no epoll_ctl */
        event_free(sock->ev);
    }
    sock->ev = event_new(http->base, fd, kind, on_socket_event, http);
    event_add(sock->ev, NULL);
    return 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
    struct http_request *req = userp;
    size_t len = size * n;

    if (req->resp_len + len > HTTP_MAX_RESPONSE) {
        req->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (req->resp_len + len + 1 > req->resp_cap) {
        size_t cap = req->resp_cap ? req->resp_cap : 1024;

        while (cap < req->resp_len + len + 1)
            cap *= 2;
        req->resp = xrealloc(req->resp, cap);
        req->resp_cap = cap;
    }
    memcpy(req->resp + req->resp_len, data, len);
    req->resp_len += len;
    req->resp[req->resp_len] = '\0';
    return len;
}

static size_t header_cb(char *data, size_t size, size_t n, void *userp)
{
    struct http_request *req = userp;
    size_t len = size * n;
    static const char name[] = "retry-after:";

    if (len > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char value[32];
        size_t vlen = len - (sizeof(name) - 1);
        char *end;
        long secs;

        if (vlen >= sizeof(value))
            vlen = sizeof(value) - 1;
        memcpy(value, data + sizeof(name) - 1, vlen);
        value[vlen] = '\0';
        errno = 0;
        secs = strtol(value, &end, 10);
        /* HTTP-dates are ignored: no MJ server sends them. */
        if (errno == 0 && end != value && secs >= 0 && secs < 86400)
            req->retry_after_ms = secs * 1000;
    }
    return len;
}

struct http *http_new(struct event_base *base, long max_connections)
{
    struct http *http = xcalloc(1, sizeof(*http));

    http->base = base;
    http->multi = curl_multi_init();
    if (http->multi == NULL)
        goto fail;
    http->timer = evtimer_new(base, on_timer, http);
    curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
    curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
    http->max_active = max_connections > 0 ? (size_t)max_connections : 0;
    if (max_connections > 0) {
        curl_multi_setopt(http->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          max_connections);
        curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, max_connections);
    }
    return http;
fail:
    free(http);
    return NULL;
}

static void request_free(struct http_request *req)
{
    struct http *http = req->http;

    if (req->started) {
        curl_multi_remove_handle(http->multi, req->easy);
        if (http->npool < HTTP_POOL_MAX) {
            curl_easy_reset(req->easy);
            http->pool[http->npool++] = req->easy;
        } else {
            curl_easy_cleanup(req->easy);
        }
        http->in_flight--;
        if (req->prev != NULL)
            req->prev->next = req->next;
        else
            http->requests = req->next;
        if (req->next != NULL)
            req->next->prev = req->prev;
    } else {
        if (req->prev != NULL)
            req->prev->next = req->next;
        else
            http->wait_head = req->next;
        if (req->next != NULL)
            req->next->prev = req->prev;
        else
            http->wait_tail = req->prev;
        http->waiting--;
    }
    free(req->url);
    free(req->body);
    free(req->resp);
    free(req);
}

void http_free(struct http *http)
{
    if (http == NULL)
        return;
    while (http->requests != NULL)
        request_free(http->requests);
    while (http->wait_head != NULL)
        request_free(http->wait_head);
    for (size_t i = 0; i < http->npool; i++)
        curl_easy_cleanup(http->pool[i]);
    curl_multi_cleanup(http->multi);
    event_free(http->timer);
    free(http);
}

/* Hands a request to libcurl. Returns 0, or -1 if libcurl refused it
 * (the request is then untouched). */
static int begin(struct http_request *req)
{
    struct http *http = req->http;
    CURL *easy;

    easy = http->npool > 0 ? http->pool[--http->npool] : curl_easy_init();
    if (easy == NULL)
        return -1;
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    /* MJ replies are a few kilobytes: a small receive buffer per handle
     * keeps thousands of jobs cheap. */
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 4096L);
    /* TLS verification stays at libcurl's default: on. */
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->post) {
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        /* Owned until the request ends: no copy of large job bodies. */
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
                         req->body != NULL ? req->body : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body != NULL ? req->len : 0));
    }
    if (curl_multi_add_handle(http->multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        return -1;
    }
    req->easy = easy;
    req->started = 1;
    req->prev = NULL;
    req->next = http->requests;
    if (req->next != NULL)
        req->next->prev = req;
    http->requests = req;
    http->in_flight++;
    return 0;
}

/* Starts waiting requests while there is room. Not from libcurl's
 * callbacks. */
static void pump(struct http *http)
{
    while (http->wait_head != NULL &&
           (http->max_active == 0 || http->in_flight < http->max_active)) {
        struct http_request *req = http->wait_head;

        http->wait_head = req->next;
        if (http->wait_head != NULL)
            http->wait_head->prev = NULL;
        else
            http->wait_tail = NULL;
        http->waiting--;
        if (begin(req) != 0) {
            /* Put it back and try again after the next completion. */
            req->prev = NULL;
            req->next = http->wait_head;
            if (http->wait_head != NULL)
                http->wait_head->prev = req;
            else
                http->wait_tail = req;
            http->wait_head = req;
            http->waiting++;
            return;
        }
    }
}

/*
 * At most max_active transfers are handed to libcurl; the rest wait here
 * as a few bytes each. Handing libcurl thousands of easy handles at once
 * (10,000 jobs submitting together) would allocate their buffers all at
 * once and leave the heap high for good.
 */
struct http_request *http_start(struct http *http, const char *method,
                                const char *url, struct curl_slist *headers,
                                char *body, size_t len, long timeout_ms,
                                long connect_timeout_ms, http_done_fn *cb,
                                void *ctx)
{
    struct http_request *req = xcalloc(1, sizeof(*req));

    req->http = http;
    req->cb = cb;
    req->ctx = ctx;
    req->body = body;
    req->len = len;
    req->url = xstrdup(url);
    req->headers = headers;
    req->post = strcmp(method, "POST") == 0;
    req->timeout_ms = timeout_ms;
    req->connect_timeout_ms = connect_timeout_ms;
    req->retry_after_ms = -1;
    http->total++;
    if (http->max_active == 0 || http->in_flight < http->max_active) {
        if (begin(req) != 0) {
            http->total--;
            free(req->url);
            free(req->body);
            free(req);
            return NULL;
        }
        return req;
    }
    req->prev = http->wait_tail;
    if (http->wait_tail != NULL)
        http->wait_tail->next = req;
    else
        http->wait_head = req;
    http->wait_tail = req;
    http->waiting++;
    return req;
}

void http_cancel(struct http_request *req)
{
    struct http *http;

    if (req == NULL)
        return;
    http = req->http;
    request_free(req);
    pump(http);
}

size_t http_in_flight(const struct http *http)
{
    return http->in_flight + http->waiting;
}

unsigned long long http_requests_total(const struct http *http)
{
    return http->total;
}

/* Never touches a CURLMsg after curl_multi_remove_handle. */
static void check_done(struct http *http)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(http->multi, &left)) != NULL) {
        struct http_request *req = NULL;
        struct http_response resp = {0};
        CURLcode code;

        if (msg->msg != CURLMSG_DONE)
            continue;
        code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
        curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        resp.transport_error = code == CURLE_OK ? 0 : (int)code;
        resp.error = "";
        if (code != CURLE_OK) {
            resp.error = req->too_large   ? "response too large"
                         : req->errbuf[0] ? req->errbuf
                                          : curl_easy_strerror(code);
            resp.status = 0;
        }
        resp.maybe_delivered = !(code == CURLE_COULDNT_CONNECT ||
                                 code == CURLE_COULDNT_RESOLVE_HOST ||
                                 code == CURLE_COULDNT_RESOLVE_PROXY ||
                                 code == CURLE_UNSUPPORTED_PROTOCOL ||
                                 code == CURLE_URL_MALFORMAT);
        resp.body = req->resp != NULL ? req->resp : "";
        resp.len = req->resp_len;
        resp.retry_after_ms = req->retry_after_ms;
        /* Unlink first: the callback may start new requests. The error
         * text lives in the request, so it is copied out first. */
        {
            http_done_fn *cb = req->cb;
            void *ctx = req->ctx;
            char *body = req->resp;
            char error[CURL_ERROR_SIZE];

            snprintf(error, sizeof(error), "%s", resp.error);
            resp.error = error;
            req->resp = NULL;
            request_free(req);
            resp.body = body != NULL ? body : "";
            cb(&resp, ctx);
            free(body);
        }
    }
    pump(http);
}
