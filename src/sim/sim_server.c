#include "sim_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "clock.h"
#include "log.h"
#include "sim_account.h"
#include "sim_admin.h"
#include "sim_api.h"
#include "sim_fault.h"
#include "sim_json.h"
#include "sim_reply.h"
#include "sim_stats.h"
#include "sim_task.h"
#include "xmalloc.h"

#define CT_TEXT "text/plain; charset=utf-8"

#define MAX_BODY    (64 * 1024 * 1024) /* blends carry up to 5 images */
#define MAX_HEADERS (64 * 1024)
#define IDLE_SECS   120 /* keep-alive idle timeout */
#define BACKLOG     4096

enum route_kind {
    ROUTE_NONE,
    ROUTE_HEALTH,   /* GET /healthz */
    ROUTE_STATS,    /* GET /sim/stats */
    ROUTE_RESET,    /* POST /sim/reset */
    ROUTE_ACCOUNTS, /* GET /sim/accounts */
    ROUTE_ACCOUNT,  /* POST /sim/accounts/<name> */
    ROUTE_SUBMIT,   /* POST [/mj-xxx]/mj/submit/<ep> */
    ROUTE_FETCH,    /* GET [/mj-xxx]/mj/task/<id>/fetch */
    ROUTE_CANCEL,   /* POST [/mj-xxx]/mj/task/<id>/cancel */
    ROUTE_LIST,     /* POST [/mj-xxx]/mj/task/list-by-condition|list-by-ids */
};

struct route {
    enum route_kind kind;
    enum evhttp_cmd_type method; /* the one the route accepts */
    enum sim_mode mode;
    enum sim_endpoint ep; /* ROUTE_SUBMIT */
    const char *id;       /* task id or account name, into the request URI */
    size_t id_len;
};

/* A reply held back by the "slow" fault until its timer fires. */
struct pending {
    struct sim_server *srv;
    struct evhttp_request *req; /* kept alive by evhttp until we reply */
    struct event *timer;
    struct route rt;
    struct sim_account *acct; /* borrowed from the registry */
    struct pending *prev;
    struct pending *next;
};

struct sim_server {
    struct event_base *base;     /* borrowed */
    const struct sim_opts *opts; /* borrowed */
    struct evhttp *http;
    struct sim_table *tasks;
    struct sim_accounts *accounts;
    struct sim_stats *stats;
    struct sim_rng rng;
    struct sim_api api;
    struct sim_admin admin;
    struct sim_buf scratch;  /* reply body, reused by every request */
    struct pending *pending; /* slow replies in flight */
};

static bool eat(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

static bool rest_is(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);

    return (size_t)(end - p) == n && memcmp(p, lit, n) == 0;
}

static void parse_route(const char *uri, struct route *rt)
{
    const char *p = uri;
    const char *end = uri + strcspn(uri, "?#");
    const char *slash;

    memset(rt, 0, sizeof(*rt));
    rt->kind = ROUTE_NONE;
    rt->method = EVHTTP_REQ_GET;
    if (rest_is(p, end, "/healthz")) {
        rt->kind = ROUTE_HEALTH;
        return;
    }
    if (rest_is(p, end, "/sim/stats")) {
        rt->kind = ROUTE_STATS;
        return;
    }
    if (rest_is(p, end, "/sim/reset")) {
        rt->kind = ROUTE_RESET;
        rt->method = EVHTTP_REQ_POST;
        return;
    }
    if (rest_is(p, end, "/sim/accounts")) {
        rt->kind = ROUTE_ACCOUNTS;
        return;
    }
    if (eat(&p, end, "/sim/accounts/")) {
        rt->kind = ROUTE_ACCOUNT;
        rt->method = EVHTTP_REQ_POST;
        rt->id = p;
        rt->id_len = (size_t)(end - p);
        return;
    }
    if (eat(&p, end, "/mj-fast/"))
        rt->mode = SIM_MODE_FAST;
    else if (eat(&p, end, "/mj-relax/"))
        rt->mode = SIM_MODE_RELAX;
    else if (eat(&p, end, "/mj-turbo/"))
        rt->mode = SIM_MODE_TURBO;
    else if (!eat(&p, end, "/"))
        return;
    if (!eat(&p, end, "mj/"))
        return;
    if (eat(&p, end, "submit/")) {
        for (int e = 0; e < SIM_EP_COUNT; e++) {
            if (rest_is(p, end, sim_endpoint_name((enum sim_endpoint)e))) {
                rt->kind = ROUTE_SUBMIT;
                rt->method = EVHTTP_REQ_POST;
                rt->ep = (enum sim_endpoint)e;
                return;
            }
        }
        return;
    }
    if (!eat(&p, end, "task/"))
        return;
    if (rest_is(p, end, "list-by-condition") ||
        rest_is(p, end, "list-by-ids")) {
        rt->kind = ROUTE_LIST;
        rt->method = EVHTTP_REQ_POST;
        return;
    }
    slash = memchr(p, '/', (size_t)(end - p));
    if (slash == NULL || slash == p)
        return;
    rt->id = p;
    rt->id_len = (size_t)(slash - p);
    if (rest_is(slash, end, "/fetch")) {
        rt->kind = ROUTE_FETCH;
    } else if (rest_is(slash, end, "/cancel")) {
        rt->kind = ROUTE_CANCEL;
        rt->method = EVHTTP_REQ_POST;
    }
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static void respond(struct sim_server *srv, struct evhttp_request *req,
                    const struct sim_resp *r)
{
    if (r->ctype != NULL)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Type", r->ctype);
    if (r->body->len > 0)
        evbuffer_add(evhttp_request_get_output_buffer(req), r->body->data,
                     r->body->len);
    if (srv->opts->verbose)
        log_debug("%s %s -> %d",
                  evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST"
                                                                     : "GET",
                  evhttp_request_get_uri(req), r->status);
    /* May free req (at once if the client is already gone). */
    evhttp_send_reply(req, r->status, reason_phrase(r->status), NULL);
}

static void resp_init(struct sim_server *srv, struct sim_resp *r)
{
    sim_buf_reset(&srv->scratch);
    r->status = 200;
    r->ctype = NULL;
    r->body = &srv->scratch;
}

static void resp_text(struct sim_resp *r, int status, const char *text)
{
    r->status = status;
    r->ctype = CT_TEXT;
    sim_buf_adds(r->body, text);
}

/*
 * The account whose key the request carries, as 'Authorization: Bearer
 * KEY' or 'mj-api-secret: KEY'; NULL when it carries none of the keys.
 * With auth off, always the default account.
 */
static struct sim_account *identify(const struct sim_server *srv,
                                    struct evhttp_request *req)
{
    static const char bearer[] = "Bearer ";
    struct sim_account *a = NULL;
    struct evkeyvalq *h;
    const char *v;

    if (!sim_accounts_auth(srv->accounts))
        return sim_accounts_at(srv->accounts, 0);
    h = evhttp_request_get_input_headers(req);
    v = evhttp_find_header(h, "Authorization");
    if (v != NULL && strncmp(v, bearer, sizeof(bearer) - 1) == 0) {
        v += sizeof(bearer) - 1;
        a = sim_accounts_by_key(srv->accounts, v, strlen(v));
    }
    if (a == NULL) {
        v = evhttp_find_header(h, "mj-api-secret");
        if (v != NULL)
            a = sim_accounts_by_key(srv->accounts, v, strlen(v));
    }
    return a;
}

/* The request body as one contiguous block. */
static const char *request_body(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const char *data;

    *len = evbuffer_get_length(in);
    if (*len == 0)
        return "";
    data = (const char *)evbuffer_pullup(in, -1);
    return data != NULL ? data : "";
}

/* Runs an MJ route through sim_api for account acct. */
static void dispatch(struct sim_server *srv, struct evhttp_request *req,
                     const struct route *rt, struct sim_account *acct,
                     enum sim_fault fault, struct sim_resp *r)
{
    int64_t now = clock_wall_ms();
    const char *body;
    size_t len;

    switch (rt->kind) {
    case ROUTE_SUBMIT:
        body = request_body(req, &len);
        sim_api_submit(&srv->api, acct, rt->ep, rt->mode, body, len, fault, now,
                       r);
        return;
    case ROUTE_FETCH:
        sim_api_fetch(&srv->api, acct, rt->id, rt->id_len, now, r);
        return;
    case ROUTE_CANCEL:
        sim_api_cancel(&srv->api, acct, rt->id, rt->id_len, now, r);
        return;
    case ROUTE_LIST:
        body = request_body(req, &len);
        sim_api_list(&srv->api, acct, body, len, now, r);
        return;
    default:
        resp_text(r, 404, "Not Found");
        return;
    }
}

static void pending_unlink(struct sim_server *srv, struct pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        srv->pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
}

/* The delayed answer: 503 for a submit, the real answer otherwise. */
static void answer_slow(struct sim_server *srv, struct evhttp_request *req,
                        const struct route *rt, struct sim_account *acct)
{
    struct sim_resp r;

    resp_init(srv, &r);
    if (rt->kind == ROUTE_SUBMIT)
        sim_reply_fault(&r, srv->opts->dialect, SIM_FAULT_SLOW, true, false);
    else
        dispatch(srv, req, rt, acct, SIM_FAULT_NONE, &r);
    respond(srv, req, &r);
}

static void pending_finish(struct pending *p)
{
    pending_unlink(p->srv, p);
    event_free(p->timer); /* safe from its own callback: not persistent */
    answer_slow(p->srv, p->req, &p->rt, p->acct);
    free(p);
}

/* libevent timer callback (loop context): the slow delay is over. */
static void on_slow_timer(evutil_socket_t fd, short what, void *arg)
{
    pending_finish(arg);
}

/*
 * Holds the reply back for slow_ms. If the client hangs up meanwhile,
 * evhttp detaches the request from the connection but keeps it until we
 * reply; evhttp_send_reply() then just frees it.
 */
static void defer(struct sim_server *srv, struct evhttp_request *req,
                  const struct route *rt, struct sim_account *acct)
{
    struct pending *p;
    struct event *timer;
    struct timeval tv;

    p = xcalloc(1, sizeof(*p));
    timer = evtimer_new(srv->base, on_slow_timer, p);
    if (timer == NULL) {
        log_error("slow reply: cannot create a timer; answering now");
        free(p);
        answer_slow(srv, req, rt, acct);
        return;
    }
    p->srv = srv;
    p->req = req;
    p->rt = *rt;
    p->acct = acct;
    p->timer = timer;
    p->next = srv->pending;
    if (srv->pending != NULL)
        srv->pending->prev = p;
    srv->pending = p;
    tv.tv_sec = (time_t)(srv->opts->slow_ms / 1000);
    tv.tv_usec = (suseconds_t)(srv->opts->slow_ms % 1000) * 1000;
    if (evtimer_add(timer, &tv) != 0) {
        log_error("slow reply: cannot arm the timer; answering now");
        pending_finish(p);
    }
}

/* The test-control endpoints (sim_admin) and /healthz. */
static void handle_admin(struct sim_server *srv, struct evhttp_request *req,
                         const struct route *rt, struct sim_resp *r)
{
    int64_t now = clock_wall_ms();
    const char *query = strchr(evhttp_request_get_uri(req), '?');
    const char *body;
    size_t len;

    switch (rt->kind) {
    case ROUTE_HEALTH:
        resp_text(r, 200, "ok");
        return;
    case ROUTE_STATS:
        sim_admin_stats(&srv->admin, now, r);
        return;
    case ROUTE_RESET:
        body = request_body(req, &len);
        sim_admin_reset(&srv->admin, query != NULL ? query + 1 : NULL, body,
                        len, now, r);
        return;
    case ROUTE_ACCOUNTS:
        sim_admin_accounts(&srv->admin, now, r);
        return;
    case ROUTE_ACCOUNT:
        body = request_body(req, &len);
        sim_admin_account(&srv->admin, rt->id, rt->id_len, body, len, now, r);
        return;
    default:
        resp_text(r, 404, "Not Found");
        return;
    }
}

/*
 * Counts an MJ request that is answered before sim_api sees it (a fault,
 * a down account), overall and for its account.
 */
static void count_unserved(struct sim_server *srv, struct sim_account *acct,
                           const struct route *rt)
{
    enum sim_counter c;
    enum sim_acct_counter ac;

    if (rt->kind == ROUTE_SUBMIT) {
        c = SIM_CTR_SUBMITS;
        ac = SIM_ACTR_SUBMITS;
    } else if (rt->kind == ROUTE_FETCH) {
        c = SIM_CTR_FETCHES;
        ac = SIM_ACTR_FETCHES;
    } else if (rt->kind == ROUTE_LIST) {
        c = SIM_CTR_BATCH_FETCHES;
        ac = SIM_ACTR_BATCH_FETCHES;
    } else {
        return;
    }
    sim_stats_add(srv->stats, c, 1);
    sim_account_add(acct, ac, 1);
}

static bool is_admin(enum route_kind k)
{
    return k == ROUTE_HEALTH || k == ROUTE_STATS || k == ROUTE_RESET ||
           k == ROUTE_ACCOUNTS || k == ROUTE_ACCOUNT;
}

/*
 * evhttp callback for every request (loop context). It answers at once,
 * except for the slow fault, which hands req to a timer (see defer()).
 * Order: route, method, admin endpoints, --no-batch, key (and revoked),
 * down, drawn faults, then sim_api.
 */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct sim_server *srv = arg;
    enum sim_dialect d = srv->opts->dialect;
    struct sim_account *acct;
    struct route rt;
    struct sim_resp r;
    enum sim_fault fault = SIM_FAULT_NONE;

    resp_init(srv, &r);
    parse_route(evhttp_request_get_uri(req), &rt);
    if (rt.kind == ROUTE_NONE) {
        resp_text(&r, 404, "Not Found");
        goto send;
    }
    if (evhttp_request_get_command(req) != rt.method) {
        resp_text(&r, 405, "Method Not Allowed");
        goto send;
    }
    if (is_admin(rt.kind)) {
        handle_admin(srv, req, &rt, &r);
        goto send;
    }
    acct = identify(srv, req);
    if (rt.kind == ROUTE_LIST && srv->opts->no_batch) {
        /* A server without the route: 404 before any auth, like any
         * unknown path; counted so tests can see the fallback. */
        sim_stats_add(srv->stats, SIM_CTR_BATCH_NOT_FOUND, 1);
        if (acct != NULL)
            sim_account_add(acct, SIM_ACTR_BATCH_404, 1);
        resp_text(&r, 404, "Not Found");
        goto send;
    }
    if (acct == NULL || sim_account_flags(acct)->revoked) {
        sim_stats_add(srv->stats, SIM_CTR_AUTH_FAILURES, 1);
        if (acct != NULL)
            sim_account_add(acct, SIM_ACTR_AUTH_REFUSALS, 1);
        sim_reply_auth(&r, d);
        goto send;
    }
    if (sim_account_flags(acct)->down) {
        count_unserved(srv, acct, &rt);
        sim_stats_add(srv->stats, SIM_CTR_DOWN_REFUSALS, 1);
        sim_account_add(acct, SIM_ACTR_DOWN_REFUSALS, 1);
        sim_reply_fault(&r, d, SIM_FAULT_500, rt.kind == ROUTE_SUBMIT, false);
        goto send;
    }
    if (rt.kind != ROUTE_CANCEL)
        fault =
            sim_fault_draw(&srv->rng, srv->opts->rate, rt.kind == ROUTE_SUBMIT);
    switch (fault) {
    case SIM_FAULT_NONE:
    case SIM_FAULT_QUEUE_FULL: /* applied by sim_api after validation */
        break;
    case SIM_FAULT_SLOW:
        sim_stats_fault(srv->stats, fault);
        if (rt.kind == ROUTE_SUBMIT)
            count_unserved(srv, acct, &rt); /* sim_api never sees it */
        defer(srv, req, &rt, acct);
        return;
    default:
        sim_stats_fault(srv->stats, fault);
        count_unserved(srv, acct, &rt);
        sim_reply_fault(&r, d, fault, rt.kind == ROUTE_SUBMIT,
                        sim_rng_chance(&srv->rng, 0.5));
        goto send;
    }
    dispatch(srv, req, &rt, acct, fault, &r);
send:
    respond(srv, req, &r);
}

struct sim_server *sim_server_new(struct event_base *base,
                                  const struct sim_opts *opts)
{
    struct sim_server *srv = xcalloc(1, sizeof(*srv));
    uint64_t seed = opts->seed;

    srv->base = base;
    srv->opts = opts;
    sim_buf_init(&srv->scratch);
    srv->tasks = sim_table_new((size_t)opts->max_tasks);
    srv->accounts = sim_accounts_new(opts);
    /* An evicted task must leave its account's in-flight heap. */
    sim_table_set_drop_hook(srv->tasks, sim_accounts_on_drop, srv->accounts);
    srv->stats = sim_stats_new();
    if (srv->stats == NULL) {
        log_error("sim: out of memory for counters");
        goto fail;
    }
    if (!opts->seed_set)
        seed = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^
               (uint64_t)clock_mono_ms();
    sim_rng_seed(&srv->rng, seed);
    log_info("fault PRNG seed %llu%s", (unsigned long long)seed,
             opts->seed_set ? "" : " (time-based; pass --seed to repeat)");
    srv->api.opts = opts;
    srv->api.tasks = srv->tasks;
    srv->api.stats = srv->stats;
    srv->api.rng = &srv->rng;
    srv->api.timing.duration_ms = opts->duration_ms;
    srv->api.timing.queue_ms = opts->queue_ms;
    srv->api.timing.steps = opts->progress_steps;
    srv->admin.tasks = srv->tasks;
    srv->admin.stats = srv->stats;
    srv->admin.accounts = srv->accounts;

    srv->http = evhttp_new(base);
    if (srv->http == NULL) {
        log_error("sim: evhttp_new failed");
        goto fail;
    }
    evhttp_set_gencb(srv->http, on_request, srv);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_max_body_size(srv->http, MAX_BODY);
    evhttp_set_max_headers_size(srv->http, MAX_HEADERS);
    evhttp_set_timeout(srv->http, IDLE_SECS);
    evhttp_set_default_content_type(srv->http, NULL);
    return srv;
fail:
    sim_server_free(srv);
    return NULL;
}

int sim_server_listen(struct sim_server *srv, int *port)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    const char *host = srv->opts->listen_host;
    int fd = -1;
    int err = EADDRNOTAVAIL;
    int rc;
    int one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, srv->opts->listen_port, &hints, &res);
    if (rc != 0) {
        log_error("listen: cannot resolve '%s': %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* Accepted sockets inherit it: small replies go out at once. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, BACKLOG) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = err;
        log_error_errno("listen: cannot bind %s:%s", host,
                        srv->opts->listen_port);
        return -err;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        err = errno;
        log_error_errno("listen: getsockname");
        close(fd);
        return -err;
    }
    if (ss.ss_family == AF_INET6)
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    /* evhttp owns fd from here (closed by evhttp_free). */
    if (evhttp_accept_socket_with_handle(srv->http, fd) == NULL) {
        log_error("listen: evhttp refused the socket");
        close(fd);
        return -EIO;
    }
    return 0;
}

void sim_server_free(struct sim_server *srv)
{
    if (srv == NULL)
        return;
    while (srv->pending != NULL)
        pending_finish(srv->pending);
    if (srv->http != NULL)
        evhttp_free(srv->http);
    sim_table_free(srv->tasks); /* before the accounts: its drop hook */
    sim_accounts_free(srv->accounts);
    sim_stats_free(srv->stats);
    sim_buf_release(&srv->scratch);
    free(srv);
}
