#include "sim.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "sim_opts.h"
#include "sim_server.h"

/*
 * `mjq sim`: options, the event loop, signals. Exit codes: 0 after
 * SIGINT/SIGTERM or --help, 1 when the server cannot start (bind, port
 * file), 64 for bad options.
 */

#define EXIT_USAGE 64

/* Writes "<port>\n" to path atomically: tests poll for the file. */
static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    f = fopen(tmp, "we");
    if (f == NULL)
        return -errno;
    if (fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
        int err = errno;

        unlink(tmp);
        return -err;
    }
    if (rename(tmp, path) != 0) {
        int err = errno;

        unlink(tmp);
        return -err;
    }
    return 0;
}

/* Names and limits of the accounts; never their keys. */
static void log_accounts(const struct sim_opts *o)
{
    if (o->key != NULL)
        log_info("account default (--key)");
    for (size_t i = 0; i < o->naccounts; i++)
        log_info("account %s", o->accounts[i].name);
    if (o->account_limit > 0)
        log_info("at most %lld unfinished tasks per account",
                 (long long)o->account_limit);
    for (int m = 0; m < SIM_MODE_COUNT; m++) {
        if (o->mode_limit[m] > 0)
            log_info("at most %lld unfinished %s tasks per account",
                     (long long)o->mode_limit[m],
                     sim_mode_name((enum sim_mode)m));
    }
    if (o->no_batch)
        log_info("list-by-condition disabled (--no-batch): 404");
}

/* Runs in loop context (evsignal self-pipe), not in a signal handler. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;

    log_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(base);
}

int sim_main(int argc, char **argv)
{
    struct sim_opts opts;
    struct sim_opts_error err;
    struct event_base *base = NULL;
    struct sim_server *srv = NULL;
    struct event *ev_int = NULL;
    struct event *ev_term = NULL;
    struct sigaction sa;
    int code = 1;
    int port = 0;
    int rc;

    rc = sim_opts_parse(&opts, argc, argv, stdout, &err);
    if (rc != 0) {
        sim_opts_free(&opts);
        if (rc > 0)
            return 0;
        fprintf(stderr, "mjq sim: %s\n", err.text);
        return EXIT_USAGE;
    }
    log_setup(opts.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, LOG_FORMAT_TEXT,
              "sim");

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);

    base = event_base_new();
    if (base == NULL) {
        log_error("event_base_new failed");
        goto out;
    }
    srv = sim_server_new(base, &opts);
    if (srv == NULL)
        goto out;
    if (sim_server_listen(srv, &port) != 0)
        goto out;
    if (opts.port_file != NULL) {
        rc = write_port_file(opts.port_file, port);
        if (rc != 0) {
            errno = -rc;
            log_error_errno("cannot write port file %s", opts.port_file);
            goto out;
        }
    }
    ev_int = evsignal_new(base, SIGINT, on_signal, base);
    ev_term = evsignal_new(base, SIGTERM, on_signal, base);
    if (ev_int == NULL || ev_term == NULL || evsignal_add(ev_int, NULL) ||
        evsignal_add(ev_term, NULL)) {
        log_error("cannot install signal events");
        goto out;
    }
    /* Keys never reach the log: only whether there are any, and names. */
    log_info("listening on %s port %d: dialect %s, duration %lld ms, "
             "queue %lld ms, %d steps, auth %s",
             opts.listen_host, port, sim_dialect_name(opts.dialect),
             (long long)opts.duration_ms, (long long)opts.queue_ms,
             opts.progress_steps,
             opts.key != NULL || opts.naccounts > 0 ? "required" : "off");
    log_accounts(&opts);
    if (event_base_dispatch(base) < 0) {
        log_error("event loop failed");
        goto out;
    }
    log_info("stopped");
    code = 0;
out:
    if (ev_int != NULL)
        event_free(ev_int);
    if (ev_term != NULL)
        event_free(ev_term);
    sim_server_free(srv);
    if (base != NULL)
        event_base_free(base);
    sim_opts_free(&opts);
    return code;
}
