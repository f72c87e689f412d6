#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "backoff.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "monitor.h"
#include "store.h"
#include "worker.h"
#include "xmalloc.h"

/*
 * `mjq run`: starts `workers` worker processes by fork + exec of
 * `mjq worker` (each starts clean: its own event loop, no inherited
 * connections), reaps every child (it may be PID 1 in a container),
 * restarts dead workers with capped, jittered backoff, and turns SIGTERM
 * into a drain and SIGHUP into a validated reload. It never talks to the
 * MJ API.
 */

/* A worker that lived less than this died "early": throttle harder. */
#define EARLY_DEATH_MS        10000
#define RESPAWN_BASE_MS       500
#define RESPAWN_EARLY_BASE_MS 2000
#define RESPAWN_MAX_MS        60000
/* Extra time given to workers past their own shutdown_timeout. */
#define KILL_GRACE_S 5

enum slot_state {
    SLOT_FREE,
    SLOT_RUNNING,  /* child alive */
    SLOT_WAITING,  /* child dead, restart timer armed */
    SLOT_DISABLED, /* exited with the fatal-config code: never again */
};

struct slot {
    struct supervisor *sup;
    enum slot_state state;
    pid_t pid;
    int retiring;      /* replaced by a reload: do not respawn */
    int told;          /* sent SIGTERM: draining (another would mean
                        * "exit now") */
    int64_t started;   /* monotonic ms of the last spawn */
    unsigned failures; /* consecutive early deaths */
    long delay_ms;     /* delay of the pending restart */
    struct event *restart;
    struct monitor_chan *chan; /* the running worker's channel (monitor.h) */
};

struct supervisor {
    struct config cfg;
    const char *config_path;
    char **flags;
    size_t nflags;
    char **worker_argv; /* argv for exec: mjq worker <args> */
    char exe[4096];     /* our binary's path, resolved at start */
    struct event_base *base;
    struct store *store; /* events only */
    char id[128];
    struct slot **slots; /* stable addresses: timers point at slots */
    size_t nslots;
    int stopping; /* SIGTERM seen: no more respawns */
    int stops;    /* signals seen while stopping */
    int leaving;  /* last events being flushed, then exit */
    int exit_code;
    struct event *sig[5];
    struct event *kill_timer;
    struct event *sweep_timer; /* recovery of dead workers' jobs */
    /* Worker channels, queue sampling, admin endpoint (monitor.h). */
    struct monitor *monitor;
};

static void emit(struct supervisor *sup, const char *type,
                 const char *const *fields, size_t n)
{
    if (sup->store != NULL)
        store_event(sup->store, type, NULL, fields, n);
}

static size_t live_children(const struct supervisor *sup)
{
    size_t n = 0;

    for (size_t i = 0; i < sup->nslots; i++)
        if (sup->slots[i]->state == SLOT_RUNNING)
            n++;
    return n;
}

static struct slot *free_slot(struct supervisor *sup)
{
    for (size_t i = 0; i < sup->nslots; i++)
        if (sup->slots[i]->state == SLOT_FREE)
            return sup->slots[i];
    sup->slots = xrealloc(sup->slots, (sup->nslots + 1) * sizeof(*sup->slots));
    sup->slots[sup->nslots] = xcalloc(1, sizeof(struct slot));
    sup->slots[sup->nslots]->sup = sup;
    return sup->slots[sup->nslots++];
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void exec_worker(struct supervisor *sup, int chan_fd)
{
    struct sigaction dfl;
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE};

    /* Only the stop signals blocked: the worker unblocks them once it
     * handles them, so a quick second reload drains it, never kills it. */
    worker_stop_signals(SIG_SETMASK);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &dfl, NULL);
    /* Our end of the channel survives exec (MJQ_PARENT_FD names it). */
    fcntl(chan_fd, F_SETFD, 0);
    execv(sup->exe, sup->worker_argv);
    _exit(127);
}

static void spawn(struct supervisor *sup, struct slot *slot)
{
    /* The worker's channel: it notices our death by EOF on it and sends
     * its counters over it. Set in our environment, for the child. */
    struct monitor_chan *chan = monitor_chan_open(sup->monitor);
    char fd[16];
    pid_t pid;

    if (chan == NULL) {
        log_error_errno("socketpair failed");
        return;
    }
    snprintf(fd, sizeof(fd), "%d", monitor_chan_child_fd(chan));
    setenv("MJQ_PARENT_FD", fd, 1);
    pid = fork();
    if (pid < 0) {
        log_error_errno("fork failed");
        monitor_chan_close(sup->monitor, chan);
        return;
    }
    if (pid == 0)
        exec_worker(sup, monitor_chan_child_fd(chan));
    monitor_chan_forked(chan);
    slot->chan = chan;
    slot->sup = sup;
    slot->pid = pid;
    slot->state = SLOT_RUNNING;
    slot->told = 0;
    slot->started = clock_mono_ms();
    log_info("worker started: pid %ld", (long)pid);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    struct slot *slot = arg;
    struct supervisor *sup = slot->sup;
    char pid[24], delay[24], failures[24];
    const char *fields[] = {"pid", pid,        "delay_ms",
                            delay, "failures", failures};

    (void)fd;
    (void)what;
    if (sup->stopping || slot->state != SLOT_WAITING)
        return;
    spawn(sup, slot);
    monitor_restarted(sup->monitor);
    snprintf(pid, sizeof(pid), "%ld", (long)slot->pid);
    snprintf(delay, sizeof(delay), "%ld", slot->delay_ms);
    snprintf(failures, sizeof(failures), "%u", slot->failures);
    emit(sup, "worker_respawned", fields, 3);
}

static void schedule_restart(struct supervisor *sup, struct slot *slot)
{
    int early = clock_mono_ms() - slot->started < EARLY_DEATH_MS;
    long delay;
    struct timeval tv;

    if (early)
        slot->failures++;
    else
        slot->failures = 0;
    delay = backoff_retry_delay(
        early ? RESPAWN_EARLY_BASE_MS : RESPAWN_BASE_MS, RESPAWN_MAX_MS,
        slot->failures ? slot->failures - 1 : 0, backoff_random());
    slot->state = SLOT_WAITING;
    slot->delay_ms = delay;
    if (slot->restart == NULL)
        slot->restart = evtimer_new(sup->base, on_restart, slot);
    tv.tv_sec = delay / 1000;
    tv.tv_usec = (delay % 1000) * 1000;
    evtimer_add(slot->restart, &tv);
    log_info("restarting the worker in %ld ms%s", delay,
             early ? " (it died early: throttled)" : "");
}

static void child_exited(struct supervisor *sup, pid_t pid, int status)
{
    struct slot *slot = NULL;
    char pidbuf[24], value[24];
    const char *fields[] = {"pid", pidbuf, "code", value};

    for (size_t i = 0; i < sup->nslots; i++)
        if (sup->slots[i]->state == SLOT_RUNNING && sup->slots[i]->pid == pid)
            slot = sup->slots[i];
    if (slot == NULL)
        return; /* an adopted orphan: reaped, nothing else to do */
    snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)pid);
    if (WIFEXITED(status)) {
        snprintf(value, sizeof(value), "%d", WEXITSTATUS(status));
        log_info("worker %ld exited with code %d", (long)pid,
                 WEXITSTATUS(status));
    } else {
        fields[2] = "signal";
        snprintf(value, sizeof(value), "%d", WTERMSIG(status));
        log_warn("worker %ld killed by signal %d%s", (long)pid,
                 WTERMSIG(status), WCOREDUMP(status) ? " (core dumped)" : "");
    }
    emit(sup, "worker_exited", fields, 2);
    /* Its last counters join the retired totals. */
    monitor_chan_close(sup->monitor, slot->chan);
    slot->chan = NULL;
    slot->pid = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == MJQ_EXIT_CONFIG) {
        log_error("worker exited with the fatal-configuration code %d: "
                  "not restarting it",
                  MJQ_EXIT_CONFIG);
        slot->state = SLOT_DISABLED;
    } else if (sup->stopping || slot->retiring) {
        slot->state = SLOT_FREE;
        slot->retiring = 0;
    } else {
        schedule_restart(sup, slot);
    }
}

static void on_flushed(int rc, void *arg)
{
    struct supervisor *sup = arg;

    (void)rc;
    event_base_loopexit(sup->base, NULL);
}

static void check_done(struct supervisor *sup)
{
    size_t disabled = 0, active = 0;

    for (size_t i = 0; i < sup->nslots; i++) {
        if (sup->slots[i]->state == SLOT_DISABLED)
            disabled++;
        else if (sup->slots[i]->state != SLOT_FREE)
            active++;
    }
    if (sup->stopping && live_children(sup) == 0) {
        /* Leave once Redis has the last events (at once if it is away). */
        if (!sup->leaving) {
            sup->leaving = 1;
            store_retire(sup->store, on_flushed, sup);
        }
    } else if (!sup->stopping && active == 0 && disabled > 0) {
        log_error("every worker failed its configuration: exiting");
        sup->exit_code = MJQ_EXIT_CONFIG;
        if (!sup->leaving) {
            sup->leaving = 1;
            store_retire(sup->store, on_flushed, sup); /* events first */
        }
    }
}

static void reap(struct supervisor *sup)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0)
            break;
        child_exited(sup, pid, status);
    }
    check_done(sup);
}

/* Asks a running worker to drain, once: a second SIGTERM would make it
 * exit at once, leaving its jobs to the sweep. */
static void tell_to_stop(struct slot *slot)
{
    if (slot->state == SLOT_RUNNING && !slot->told) {
        kill(slot->pid, SIGTERM);
        slot->told = 1;
    }
}

static void signal_children(struct supervisor *sup, int sig)
{
    for (size_t i = 0; i < sup->nslots; i++)
        if (sup->slots[i]->state == SLOT_RUNNING)
            kill(sup->slots[i]->pid, sig);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
    struct supervisor *sup = arg;

    (void)fd;
    (void)what;
    log_warn("workers still running past the grace period: SIGKILL");
    signal_children(sup, SIGKILL);
}

static void stop(struct supervisor *sup)
{
    struct timeval tv = {sup->cfg.shutdown_timeout_s + KILL_GRACE_S, 0};

    if (sup->stops++ > 0) {
        /* Second signal: workers exit at once, jobs stay for the sweep. */
        log_warn("second stop signal: telling workers to exit now");
        signal_children(sup, SIGTERM);
        tv.tv_sec = 2;
        evtimer_add(sup->kill_timer, &tv);
        return;
    }
    log_info("stopping: draining %zu workers", live_children(sup));
    sup->stopping = 1;
    for (size_t i = 0; i < sup->nslots; i++)
        if (sup->slots[i]->state == SLOT_WAITING) {
            evtimer_del(sup->slots[i]->restart);
            sup->slots[i]->state = SLOT_FREE;
        }
    for (size_t i = 0; i < sup->nslots; i++)
        tell_to_stop(sup->slots[i]); /* those a reload told are draining */
    evtimer_add(sup->kill_timer, &tv);
    check_done(sup);
}

/*
 * SIGHUP: read and validate the configuration again. Invalid: keep
 * running as we are. Valid: start the new workers first, then drain the
 * old ones, so capacity never drops and nothing is lost.
 */
static void reload(struct supervisor *sup)
{
    struct config fresh;
    struct config_error err;
    size_t old = sup->nslots;

    memset(&fresh, 0, sizeof(fresh));
    if (config_load(&fresh, sup->config_path, sup->flags, sup->nflags, &err) !=
        0) {
        char line[1024];

        config_error_format(&err, line, sizeof(line));
        log_error("reload refused, keeping the running configuration: %s",
                  line);
        config_free(&fresh);
        return;
    }
    config_free(&sup->cfg);
    sup->cfg = fresh;
    log_setup(sup->cfg.log_level, sup->cfg.log_format, sup->id);
    monitor_reconfigure(sup->monitor);
    log_info("configuration reloaded: rolling %d workers", sup->cfg.workers);
    {
        struct timeval tv = {sup->cfg.sweep_interval_ms / 1000,
                             (sup->cfg.sweep_interval_ms % 1000) * 1000};

        evtimer_add(sup->sweep_timer, &tv); /* the period may have changed */
    }
    for (size_t i = 0; i < old; i++)
        if (sup->slots[i]->state != SLOT_FREE)
            sup->slots[i]->retiring = 1;
    for (int i = 0; i < sup->cfg.workers; i++)
        spawn(sup, free_slot(sup));
    for (size_t i = 0; i < sup->nslots; i++) {
        struct slot *slot = sup->slots[i];

        if (!slot->retiring)
            continue;
        if (slot->state == SLOT_RUNNING) {
            tell_to_stop(slot); /* once: it may be draining already */
        } else {
            if (slot->restart != NULL)
                evtimer_del(slot->restart);
            slot->state = SLOT_FREE;
            slot->retiring = 0;
        }
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct supervisor *sup = arg;

    (void)what;
    switch (sig) {
    case SIGCHLD:
        reap(sup);
        break;
    case SIGHUP:
        if (!sup->stopping)
            reload(sup);
        break;
    case SIGTERM:
    case SIGINT:
        stop(sup);
        break;
    default:
        break;
    }
}

/* Every sweep interval: give back the jobs of workers whose heartbeat
 * expired, here or in any other pod. The sweep is global: a Redis lock
 * lets one supervisor of the deployment run it per interval. */
static void on_sweep_timer(evutil_socket_t fd, short what, void *arg)
{
    struct supervisor *sup = arg;

    (void)fd;
    (void)what;
    if (store_is_up(sup->store))
        store_sweep(sup->store, NULL, NULL);
}

/* The probes' view of the slots (monitor.h). */
static void get_state(void *arg, struct monitor_state *st)
{
    struct supervisor *sup = arg;

    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < sup->nslots; i++) {
        if (sup->slots[i]->state == SLOT_RUNNING)
            st->running++;
        else if (sup->slots[i]->state == SLOT_WAITING)
            st->waiting++;
        else if (sup->slots[i]->state == SLOT_DISABLED)
            st->disabled++;
    }
    st->draining = sup->stopping;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mjq run [--config FILE] [--set KEY=VALUE]... "
            "[--FLAG VALUE]...\n\n"
            "Runs the supervisor: starts `workers` worker processes and "
            "restarts\nthem when they die. SIGTERM/SIGINT drain (a second "
            "one exits at once);\nSIGHUP reloads the configuration "
            "(refused if invalid) and rolls the\nworkers, new ones first.\n\n"
            "Exit codes: 0 stopped cleanly, 1 runtime failure, %d fatal "
            "configuration,\n64 usage.\n\n"
            "Settings (flag, environment, file key, default):\n",
            MJQ_EXIT_CONFIG);
    config_usage(out);
}

static void build_worker_argv(struct supervisor *sup, int argc, char **argv)
{
    sup->worker_argv = xcalloc((size_t)argc + 2, sizeof(char *));
    sup->worker_argv[0] = "mjq";
    sup->worker_argv[1] = "worker";
    for (int i = 1; i < argc; i++)
        sup->worker_argv[i + 1] = argv[i];
}

/* The binary to exec for workers: the path /proc/self/exe names (so a
 * reload after an upgrade in place starts the new binary), or the link
 * itself if it cannot be read. */
static void resolve_exe(struct supervisor *sup)
{
    ssize_t n = readlink("/proc/self/exe", sup->exe, sizeof(sup->exe) - 1);

    if (n <= 0 || (size_t)n >= sizeof(sup->exe) - 1)
        snprintf(sup->exe, sizeof(sup->exe), "/proc/self/exe");
    else
        sup->exe[n] = '\0';
}

static int run(struct supervisor *sup)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    struct sigaction ign;

    snprintf(sup->id, sizeof(sup->id), "supervisor-%ld", (long)getpid());
    resolve_exe(sup);
    log_setup(sup->cfg.log_level, sup->cfg.log_format, sup->id);
    /* Each worker names itself: a shared MJQ_WORKER_ID would make them
     * share one processing list and one heartbeat. */
    if (getenv("MJQ_WORKER_ID") != NULL) {
        log_warn("MJQ_WORKER_ID is ignored under `mjq run`: each worker "
                 "names itself");
        unsetenv("MJQ_WORKER_ID");
    }
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);

    sup->base = event_base_new();
    if (sup->base == NULL) {
        log_error("cannot create the event loop");
        return 1;
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sup->sig[i] = evsignal_new(sup->base, sigs[i], on_signal, sup);
        evsignal_add(sup->sig[i], NULL);
    }
    sup->kill_timer = evtimer_new(sup->base, on_kill_timer, sup);
    sup->store = store_new(sup->base, &sup->cfg, sup->id, 0, NULL, NULL, sup);
    sup->monitor =
        monitor_new(sup->base, &sup->cfg, sup->store, get_state, sup);

    {
        struct timeval tv = {sup->cfg.sweep_interval_ms / 1000,
                             (sup->cfg.sweep_interval_ms % 1000) * 1000};

        sup->sweep_timer =
            event_new(sup->base, -1, EV_PERSIST, on_sweep_timer, sup);
        evtimer_add(sup->sweep_timer, &tv);
    }
    if (monitor_listen(sup->monitor) != 0) {
        sup->exit_code = 1; /* logged with the address and the reason */
    } else {
        log_info("supervisor started: %d workers", sup->cfg.workers);
        for (int i = 0; i < sup->cfg.workers; i++)
            spawn(sup, free_slot(sup));
        event_base_dispatch(sup->base);
        log_info("supervisor stopped");
    }

    /* Closing the channels tells workers still alive that we are gone. */
    monitor_free(sup->monitor);
    store_free(sup->store);
    for (size_t i = 0; i < sup->nslots; i++) {
        if (sup->slots[i]->restart != NULL)
            event_free(sup->slots[i]->restart);
        free(sup->slots[i]);
    }
    free(sup->slots);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        event_free(sup->sig[i]);
    event_free(sup->kill_timer);
    event_free(sup->sweep_timer);
    event_base_free(sup->base);
    return sup->exit_code;
}

int supervisor_main(int argc, char **argv)
{
    struct supervisor sup;
    struct config_error err;
    int rc;

    memset(&sup, 0, sizeof(sup));
    rc = worker_parse_args(argc, argv, usage, &sup.config_path, &sup.flags,
                           &sup.nflags);
    if (rc != 0) {
        worker_free_args(sup.flags, sup.nflags);
        return rc > 0 ? 0 : 64;
    }
    if (config_load(&sup.cfg, sup.config_path, sup.flags, sup.nflags, &err) !=
        0) {
        char line[1024];

        config_error_format(&err, line, sizeof(line));
        fprintf(stderr, "mjq run: %s\n", line);
        worker_free_args(sup.flags, sup.nflags);
        config_free(&sup.cfg);
        return MJQ_EXIT_CONFIG;
    }
    build_worker_argv(&sup, argc, argv);
    rc = run(&sup);
    free(sup.worker_argv);
    worker_free_args(sup.flags, sup.nflags);
    config_free(&sup.cfg);
    return rc;
}
