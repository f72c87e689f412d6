#include "worker.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "backoff.h"
#include "clock.h"
#include "config.h"
#include "health.h"
#include "job.h"
#include "jsonscan.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "store.h"
#include "upstream.h"
#include "xmalloc.h"

/*
 * A worker: one event loop that carries up to `concurrency` jobs at once.
 * Read this file top to bottom for a job's life:
 *
 *   take -> parse -> claim -> submit -> poll ... -> finish
 *
 * Each step is a function that starts one asynchronous operation (a Redis
 * command through store.c, an HTTP request through upstream.c, or a
 * timer) and returns; the operation's callback runs the next step. No
 * step blocks, so thousands of jobs share one thread.
 *
 * Invariants (docs/architecture.md):
 * - a payload is in this worker's processing list from take to finish, so
 *   a crash at any point loses nothing;
 * - a job is submitted upstream only while it has no recorded task id;
 * - the result, the removal from the processing list and the "done"
 *   record are written by one MULTI/EXEC, so there is exactly one result.
 */

/* Where a job is in its life. */
enum phase {
    PHASE_CLAIM,      /* claim sent to Redis */
    PHASE_SUBMIT,     /* submit request in flight */
    PHASE_RETRY_WAIT, /* waiting to submit again after transient trouble */
    PHASE_POLL_WAIT,  /* waiting for the next poll */
    PHASE_CANCEL,     /* reading the cancel flag before a poll */
    PHASE_FETCH,      /* fetch request in flight */
    PHASE_FINISH,     /* result transaction sent */
    PHASE_HANDBACK,   /* hand-back transaction sent (drain) */
    PHASE_STALLED,    /* a Redis write was lost: redo it on reconnect */
};

struct worker;

struct job {
    struct worker *w;
    struct job *prev, *next; /* w->jobs */
    enum phase phase;

    char *payload; /* exactly as taken: needed to LREM it at the end */
    size_t payload_len;
    int queue; /* index in cfg->queues */

    struct job_spec spec; /* parsed payload; spec.body freed once sent */
    int claimed;          /* the job record is ours */
    int announced;        /* the "taken" event was sent */
    int pending;          /* store commands whose callback has this job */
    int abandoned;        /* taken over elsewhere: freed once pending is 0 */
    char task_id[64];     /* upstream task id, "" until accepted */
    int task_unrecorded;  /* task_id not yet confirmed in Redis */
    int account;          /* upstream account (index), -1 until chosen */
    char *leases;         /* lease keys held in Redis, "|"-separated, or
                           * NULL: most jobs have none, so not inline */

    int64_t started_ms;   /* first take, epoch ms (for the result) */
    int64_t deadline;     /* monotonic ms */
    long submits;         /* submit requests sent, all owners */
    long polls;           /* fetch requests sent, all owners */
    int64_t answered_ms;  /* monotonic ms of the last fetch answer, or 0 */
    unsigned attempts;    /* consecutive transient answers (backoff) */
    unsigned failures;    /* of those, submits that failed (not limits) */
    char last_error[160]; /* the last transient answer, for TIMEOUT */
    unsigned stalls;      /* Redis refusals of this job's writes */
    unsigned poll_index;  /* position in the poll schedule */
    int seen;             /* upstream has shown the task at least once */
    unsigned not_found;   /* consecutive "not found" answers */
    char status[16];      /* last upstream status, for progress events */
    char progress[16];

    struct event *timer;        /* retry / poll / deadline */
    struct upstream_call *call; /* submit or poll in flight, or NULL */

    /* The result, kept until Redis has it (see finish()). */
    struct store_result result;
    char *result_text[4];    /* owned strings inside result */
    size_t task_cap;         /* bytes allocated for result_text[0] */
    char *fail_reason;       /* set by finish() */
    char invalid_action[16]; /* INVALID: the action, if readable */
    enum phase stalled_in;   /* what to redo when PHASE_STALLED */
};

struct worker {
    struct config *cfg;
    struct event_base *base;
    struct store *store;
    struct upstream *up;
    char id[128];

    struct job *jobs;
    int njobs;
    int taking;              /* a batch take is in flight */
    int draining;            /* SIGTERM: take nothing more */
    int announced;           /* worker_started was sent */
    int retiring;            /* heartbeat removal sent; exit follows */
    const char *stop_reason; /* what started the drain */
    int exit_code;
    unsigned long long finished;

    struct event *sigterm, *sigint, *sighup, *sigpipe;
    struct event *heartbeat, *drain_timer, *take_timer;
    struct report *report; /* channel to the supervisor, NULL when alone */
    uint64_t flushed[METRICS_STATUS_COUNT]; /* finished counts in Redis */

    /* Queues whose jobs found no upstream room take little or nothing
     * for a while (see pause_queue, and store_set_cap for the cap of
     * each queue): consecutive pauses per queue. */
    unsigned *full_streak;
    struct event *unpause;
};

static void take_more(struct worker *w);
static void record_task(struct job *job);
static void submit(struct job *job);
static void schedule_poll(struct job *job, long delay_ms);
static void finish(struct job *job, const char *status, const char *reason);
static void maybe_exit(struct worker *w);

/* ------------------------------------------------------------------ */
/* Small helpers.                                                       */

static int64_t time_left(const struct job *job);

/* Arms the job's timer; never later than its deadline, which the timer
 * callback then turns into TIMEOUT. */
static void set_timer(struct job *job, long delay_ms)
{
    struct timeval tv;
    int64_t left = time_left(job);

    if (delay_ms > left)
        delay_ms = (long)left;
    if (delay_ms < 0)
        delay_ms = 0;
    tv.tv_sec = delay_ms / 1000;
    tv.tv_usec = (delay_ms % 1000) * 1000;
    evtimer_add(job->timer, &tv);
}

static int64_t time_left(const struct job *job)
{
    return job->deadline - clock_mono_ms();
}

static void resume_one(struct job *job);

/*
 * A Redis write of this job could not be done. rc -1 (connection lost):
 * redone from on_store_up() after the reconnect. rc -2 (Redis refused it:
 * out of memory, read-only replica...): the connection is fine, so retry
 * on the job's timer with backoff; the deadline does not apply, since
 * what is pending is publishing an outcome that exists already.
 */
static void stall(struct job *job, enum phase what, int rc)
{
    job->stalled_in = what;
    job->phase = PHASE_STALLED;
    if (rc == -2) {
        long delay =
            backoff_retry_delay(500, 10000, job->stalls++, backoff_random());
        struct timeval tv = {delay / 1000, (delay % 1000) * 1000};

        evtimer_add(job->timer, &tv);
    }
}

static void job_event(struct job *job, const char *type,
                      const char *const *fields, size_t nfields)
{
    store_event(job->w->store, type, job->spec.id[0] ? job->spec.id : NULL,
                fields, nfields);
}

static void job_free(struct job *job)
{
    struct worker *w = job->w;

    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        w->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    w->njobs--;
    upstream_cancel(job->call);
    event_free(job->timer);
    job_spec_clear(&job->spec);
    for (size_t i = 0; i < sizeof(job->result_text) / sizeof(char *); i++)
        free(job->result_text[i]);
    free(job->payload);
    free(job->leases);
    free(job->fail_reason);
    free(job);
}

/*
 * Every store callback that carries a job starts with settle(): it counts
 * the reply in, and finishes off a job that was abandoned meanwhile (a
 * job is only freed when no store reply can still reach it).
 */
static int settle(struct job *job)
{
    struct worker *w = job->w;

    job->pending--;
    if (!job->abandoned)
        return 0;
    if (job->pending == 0) {
        job_free(job);
        take_more(w);
        maybe_exit(w);
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* 1. Take: payloads move from the queues into our processing list.      */

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void start_job(struct worker *w, struct store_item *item);

static void on_taken(int rc, struct store_item *items, size_t n, void *arg)
{
    struct worker *w = arg;

    w->taking = 0;
    for (size_t i = 0; i < n; i++)
        start_job(w, &items[i]);
    if (rc != 0)
        return; /* Redis trouble: on_store_up() takes again */
    if (n > 0) {
        take_more(w); /* there may be more waiting */
        return;
    }
    /* The queues are empty. Sleep in a blocking move when there is room
     * for one job per queue, so an idle worker costs no CPU; otherwise
     * the take timer looks again while jobs are in flight. */
    if (!w->draining && w->cfg->concurrency - w->njobs >= (int)w->cfg->nqueues)
        store_wait(w->store, on_taken, w);
}

static void on_listed(int rc, struct store_item *items, size_t n, void *arg);

static void take_more(struct worker *w)
{
    int room = w->cfg->concurrency - w->njobs;

    if (w->taking || !store_is_up(w->store))
        return;
    /* A take whose reply was lost may have moved payloads into our list:
     * adopt them before taking more, with no blocking move armed so the
     * list and our memory can be compared. */
    if (store_needs_reconcile(w->store) && !store_waiting(w->store)) {
        if (store_list_held(w->store, on_listed, w) == 0)
            w->taking = 1;
        return;
    }
    if (w->draining || room <= 0)
        return;
    if (store_take(w->store, (unsigned)room, on_taken, w) == 0)
        w->taking = 1;
}

/* Adopts every payload of the processing list that no job in memory holds
 * (counting copies: the same payload may be there twice). */
static void on_listed(int rc, struct store_item *items, size_t n, void *arg)
{
    struct worker *w = arg;
    char *used = n ? xcalloc(n, 1) : NULL;
    size_t adopted = 0;

    w->taking = 0;
    if (rc != 0) {
        free(used);
        return; /* retried on the next take_more */
    }
    for (struct job *job = w->jobs; job != NULL; job = job->next) {
        for (size_t i = 0; i < n; i++) {
            if (!used[i] && items[i].len == job->payload_len &&
                memcmp(items[i].payload, job->payload, items[i].len) == 0) {
                used[i] = 1;
                break;
            }
        }
    }
    store_reconciled(w->store);
    for (size_t i = 0; i < n; i++) {
        if (used[i])
            continue;
        /* Its queue is unknown: a hand-back returns it to the first. */
        items[i].queue = 0;
        start_job(w, &items[i]);
        adopted++;
    }
    free(used);
    if (adopted > 0)
        log_warn("adopted %zu jobs left in our processing list by a take "
                 "whose reply was lost",
                 adopted);
    take_more(w);
}

/* Adds the results written since the last flush to the per-minute counts
 * of `mjq status` (<prefix>stats:finished:<minute>); kept for later while
 * Redis is away. */
static void flush_finished(struct worker *w)
{
    const char *names[METRICS_STATUS_COUNT];
    unsigned long long delta[METRICS_STATUS_COUNT];
    int any = 0;

    for (int i = 0; i < METRICS_STATUS_COUNT; i++) {
        names[i] = metrics_status_name((enum metrics_status)i);
        delta[i] = metrics_finished((enum metrics_status)i) - w->flushed[i];
        any |= delta[i] != 0;
    }
    if (!any || store_stats_finished(w->store, clock_wall_ms() / 60000, names,
                                     delta, METRICS_STATUS_COUNT) != 0)
        return;
    for (int i = 0; i < METRICS_STATUS_COUNT; i++)
        w->flushed[i] += delta[i];
}

/* Once a second: statistics to Redis, counters to the supervisor. */
static void report_tick(struct worker *w)
{
    flush_finished(w);
    metrics_set_in_flight(w->njobs);
    report_send(w->report);
}

/* While jobs are in flight, look at the queues now and then even if no
 * job finished: a blocking move is only armed with room for one job per
 * queue. While a blocking move is armed it does nothing. Also reports. */
static void on_take_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    report_tick(w);
    if (!store_waiting(w->store))
        take_more(w);
}

/* ------------------------------------------------------------------ */
/* 2. Parse and claim.                                                  */

static void on_claimed(int rc, const struct store_claim_info *info, void *arg);

/* Lease keys name the mode; "default" for jobs without one. */
static const char *lease_mode(enum mode mode)
{
    return mode == MODE_DEFAULT ? "default" : job_mode_name(mode);
}

/*
 * Sends the claim of a parsed job: its record, its cancel flag and, if it
 * still has to be submitted, a lease on whichever account that serves its
 * mode and takes submits now has the most room (all workers of all pods
 * count in Redis). A follow-up is limited to the account that ran its
 * parent task; the claim script finds that one.
 */
static int send_claim(struct job *job)
{
    struct worker *w = job->w;
    int idx[MJQ_MAX_ACCOUNTS];
    struct store_candidate cands[MJQ_MAX_ACCOUNTS];
    size_t n =
        upstream_candidates(w->up, job->spec.mode, idx, MJQ_MAX_ACCOUNTS);
    struct store_claim_req req = {
        .id = job->spec.id,
        .queue = w->cfg->queues[job->queue],
        .action = job_action_name(job->spec.action),
        .mode = lease_mode(job->spec.mode),
        .parent_task = job->spec.parent_task[0] ? job->spec.parent_task : NULL,
        .cands = cands,
        .ncands = n,
    };

    for (size_t i = 0; i < n; i++) {
        const struct account_config *a = &w->cfg->accounts[idx[i]];

        cands[i].account = a->name;
        cands[i].limit = a->max_in_flight;
        cands[i].mode_limit = a->mode_limit[job->spec.mode];
    }
    return store_claim(w->store, &req, on_claimed, job);
}

/*
 * A job found no account with room (every account serving its mode is at
 * its in-flight limit, tripped or out of rotation): it went back to its
 * queue, where KEDA and LLEN see it, and the queue is not taken from for
 * a short, growing while. Then it trickles (one job per take) until a
 * claim finds room again, which reopens it fully in a few doublings.
 */
#define BURST_MAX 32

static void pause_queue(struct worker *w, int q)
{
    long delay =
        backoff_retry_delay(250, 2000, w->full_streak[q]++, backoff_random());
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};

    store_set_cap(w->store, (size_t)q, 0);
    if (!evtimer_pending(w->unpause, NULL))
        evtimer_add(w->unpause, &tv);
}

/* Paused queues may try again, one job at a time. */
static void unpause_all(struct worker *w)
{
    for (size_t q = 0; q < w->cfg->nqueues; q++) {
        if (store_cap(w->store, q) == 0)
            store_set_cap(w->store, q, 1);
    }
}

static void on_unpause(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    unpause_all(w);
    take_more(w);
}

/* A claim found room: the queue's takes grow back to full size. */
static void queue_had_room(struct worker *w, int q)
{
    unsigned cap = store_cap(w->store, (size_t)q);

    w->full_streak[q] = 0;
    if (cap != UINT_MAX)
        store_set_cap(w->store, (size_t)q,
                      cap == 0           ? 1
                      : cap >= BURST_MAX ? UINT_MAX
                                         : cap * 2);
}

/* Why a claim found no account, for the log and a TIMEOUT's reason:
 * every account serving the mode is out of rotation or tripped, or each
 * is at its in-flight limit. */
static void why_no_account(const struct job *job, char *buf, size_t len)
{
    const struct worker *w = job->w;
    const char *mode = lease_mode(job->spec.mode);
    size_t n = 0;
    int serving = 0;

    n += (size_t)snprintf(buf, len,
                          "no upstream account could take it (mode %s)", mode);
    for (int i = 0; i < (int)w->cfg->naccounts && n < len; i++) {
        const struct health *h = upstream_health(w->up, i);

        if (!upstream_serves(w->up, i, job->spec.mode))
            continue;
        serving++;
        n += (size_t)snprintf(
            buf + n, len - n, "%s%s: %s%s%s", serving == 1 ? ": " : "; ",
            w->cfg->accounts[i].name,
            h->state == HEALTH_OK ? "at its in-flight limit"
                                  : health_state_name(h->state),
            h->state != HEALTH_OK && h->reason[0] ? ", " : "",
            h->state != HEALTH_OK ? h->reason : "");
    }
    if (serving == 0 && n < len)
        snprintf(buf + n, len - n, ": no account serves mode %s", mode);
    if (job->spec.parent_task[0] != '\0' && n < len)
        snprintf(buf + strlen(buf), len - strlen(buf),
                 " (a follow-up waits for the account of task %s)",
                 job->spec.parent_task);
}

/*
 * A job that found no room and never will, here: no configured account
 * serves its mode, or its parent task ran on an account that is not
 * configured (or does not serve the mode). Waiting for its deadline would
 * only hold its queue back. parent_account is the claim's answer: the
 * parent task's account, "" when unknown.
 */
static int cannot_ever_run(const struct job *job, const char *parent_account,
                           char *reason, size_t len)
{
    const struct worker *w = job->w;
    const char *mode = lease_mode(job->spec.mode);
    int i;

    if (parent_account[0] != '\0') {
        i = upstream_find_account(w->up, parent_account);
        if (i < 0) {
            snprintf(reason, len,
                     "its parent task %s ran on upstream account %s, which "
                     "is not configured here",
                     job->spec.parent_task, parent_account);
            return 1;
        }
        if (!upstream_serves(w->up, i, job->spec.mode)) {
            snprintf(reason, len,
                     "its parent task %s ran on upstream account %s, which "
                     "does not serve mode %s",
                     job->spec.parent_task, parent_account, mode);
            return 1;
        }
        return 0;
    }
    for (i = 0; i < (int)w->cfg->naccounts; i++)
        if (upstream_serves(w->up, i, job->spec.mode))
            return 0;
    snprintf(reason, len, "no configured upstream account serves mode %s",
             mode);
    return 1;
}

/* The account a claimed job uses: the one the claim chose or recorded. */
static void adopt_account(struct job *job, const struct store_claim_info *info)
{
    struct upstream *up = job->w->up;

    free(job->leases);
    job->leases = info->leases[0] != '\0' ? xstrdup(info->leases) : NULL;
    job->account =
        info->account[0] ? upstream_find_account(up, info->account) : -1;
    if (job->account >= 0 || job->task_id[0] == '\0')
        return;
    /* A task recorded by an older mjq, or on an account no longer
     * configured: poll it where its mode is served. */
    job->account = 0;
    for (int i = 0; i < (int)job->w->cfg->naccounts; i++) {
        if (upstream_serves(up, i, job->spec.mode)) {
            job->account = i;
            break;
        }
    }
    if (info->account[0] != '\0')
        log_job_warn(job->spec.id, job->task_id,
                     "account %s is not configured here: polling its task "
                     "on %s",
                     info->account, upstream_account_name(up, job->account));
}

/* The phase a job is in, or would be in were it not stalled. */
static enum phase effective_phase(const struct job *job)
{
    return job->phase == PHASE_STALLED ? job->stalled_in : job->phase;
}

/*
 * 1 if another job in memory has the same id and owns it or is claiming
 * it: this payload is a duplicate copy. A job being handed back does not
 * count: its payload is on its way back to the queue, and may be taken
 * again (by this worker) before the hand-back's reply arrives.
 */
static int holds_other_copy(const struct job *job)
{
    for (const struct job *o = job->w->jobs; o != NULL; o = o->next) {
        enum phase p = effective_phase(o);

        if (o != job && !o->abandoned && p != PHASE_HANDBACK &&
            (o->claimed || p == PHASE_CLAIM) &&
            strcmp(o->spec.id, job->spec.id) == 0)
            return 1;
    }
    return 0;
}

static void start_job(struct worker *w, struct store_item *item)
{
    struct job *job = xcalloc(1, sizeof(*job));
    struct job_error err;
    job->w = w;
    job->account = -1;
    job->payload = item->payload; /* stolen */
    job->payload_len = item->len;
    item->payload = NULL;
    job->queue = item->queue;
    job->timer = evtimer_new(w->base, on_timer, job);
    job->started_ms = clock_wall_ms();
    job->next = w->jobs;
    if (job->next != NULL)
        job->next->prev = job;
    w->jobs = job;
    w->njobs++;

    if (job_parse(job->payload, job->payload_len, w->cfg->max_job_bytes,
                  &job->spec, &err) != 0) {
        char reason[sizeof(err.field) + sizeof(err.reason) + 32];

        /* Keep what could be read so the INVALID result names the job. */
        snprintf(job->spec.id, sizeof(job->spec.id), "%s", err.id);
        job->spec.action = ACTION_COUNT;
        snprintf(reason, sizeof(reason), "invalid job: %s: %s", err.field,
                 err.reason);
        log_job_warn(err.id[0] ? err.id : NULL, NULL, "%s", reason);
        snprintf(job->invalid_action, sizeof(job->invalid_action), "%s",
                 err.action);
        job->result.action = job->invalid_action;
        if (err.reply_to[0] != '\0')
            job->spec.reply_to = xstrdup(err.reply_to);
        job->result.dead = 1;
        metrics_job_taken();
        finish(job, "INVALID", reason);
        return;
    }
    /* meta is echoed byte for byte from the payload: keep its text, not
     * the parsed tree. */
    if (job->spec.meta_text != NULL)
        job->result_text[3] = xmemdup(job->spec.meta_text, job->spec.meta_len);
    json_decref(job->spec.meta);
    job->spec.meta = NULL;
    /* A second copy of an id this worker already runs (pushed twice, say)
     * must not claim: the claim would touch the record of the first. */
    if (holds_other_copy(job)) {
        finish(job, "DUPLICATE",
               "job id is already being processed by this worker");
        return;
    }
    job->phase = PHASE_CLAIM;
    if (send_claim(job) != 0)
        stall(job, PHASE_CLAIM, -1);
    else
        job->pending++;
}

static void on_claimed(int rc, const struct store_claim_info *info, void *arg)
{
    struct job *job = arg;
    long timeout_ms;

    if (settle(job))
        return;
    if (rc != 0) {
        /* Redo the claim: the script knows our own record ("mine") if
         * this one did run. */
        stall(job, PHASE_CLAIM, rc);
        return;
    }
    if (info->kind != CLAIM_FULL && !job->announced) {
        const char *fields[] = {"queue", job->w->cfg->queues[job->queue],
                                "action", job_action_name(job->spec.action)};

        /* Counted once per worker that runs it: a job that found no
         * upstream room and went back to its queue was not taken. */
        job->announced = 1;
        job_event(job, "taken", fields, 2);
        metrics_job_taken();
        if (job->spec.enqueued_ms > 0)
            metrics_queue_wait(clock_wall_ms() - job->spec.enqueued_ms);
    }
    /* "mine" (or "full" after it): another copy of this id running here
     * makes this one the duplicate; with no such copy the record is ours
     * from before (a claim re-sent after its reply was lost, or a take
     * reply that arrived after our heartbeat lapsed), so resume it. */
    if (info->kind == CLAIM_DONE || info->kind == CLAIM_BUSY ||
        ((info->kind == CLAIM_MINE || info->kind == CLAIM_FULL) &&
         holds_other_copy(job))) {
        char reason[300];

        snprintf(reason, sizeof(reason),
                 info->kind == CLAIM_DONE
                     ? "job id already finished inside the dedup window"
                     : "job id is already being processed by worker %s",
                 info->owner);
        finish(job, "DUPLICATE", reason);
        return;
    }
    job->claimed = 1;
    if (info->kind != CLAIM_FULL)
        adopt_account(job, info); /* its leases are released however it ends */
    if (info->kind != CLAIM_NEW) {
        /* Resume where the previous owner stopped (a job that found no
         * room may have been taken before too); the deadline runs from
         * the first take, not from this one. */
        snprintf(job->task_id, sizeof(job->task_id), "%s", info->task_id);
        if (info->taken_ms > 0)
            job->started_ms = info->taken_ms;
        job->submits = info->submits;
        job->polls = info->polls;
        if (info->kind != CLAIM_MINE && info->owner[0] != '\0' &&
            strcmp(info->owner, job->w->id) != 0) {
            /* Taken over from a dead worker (the claim counted it). */
            long recoveries = info->recoveries + 1;
            char count[24];
            const char *fields[] = {"from", info->owner, "recoveries",
                                    count,  "task_id",   job->task_id};

            snprintf(count, sizeof(count), "%ld", recoveries);
            metrics_recovered();
            job_event(job, "recovered", fields, job->task_id[0] ? 3 : 2);
            log_job_warn(job->spec.id, job->task_id[0] ? job->task_id : NULL,
                         "recovered from dead worker %s (%ld time%s)",
                         info->owner, recoveries, recoveries == 1 ? "" : "s");
            if (recoveries > job->w->cfg->max_recoveries) {
                /* A payload that keeps killing its workers must stop. */
                char reason[200];

                snprintf(reason, sizeof(reason),
                         "recovered %ld times from dead workers (limit %d): "
                         "given up; payload kept on the dead stream",
                         recoveries, job->w->cfg->max_recoveries);
                job->result.dead = 1;
                finish(job, "FAILURE", reason);
                return;
            }
        }
    }
    timeout_ms = job->spec.timeout_ms > 0
                     ? job->spec.timeout_ms
                     : job->w->cfg->mode_timeout_s[job->spec.mode] * 1000;
    job->deadline =
        clock_mono_ms() + timeout_ms - (clock_wall_ms() - job->started_ms);
    if (info->cancelled) {
        finish(job, "CANCEL", "cancelled before submit");
        return;
    }
    if (info->kind == CLAIM_FULL) {
        char why[400], reason[500];

        if (cannot_ever_run(job, info->account, reason, sizeof(reason))) {
            finish(job, "FAILURE", reason);
            return;
        }
        why_no_account(job, why, sizeof(why));
        if (time_left(job) <= 0) {
            snprintf(reason, sizeof(reason), "deadline passed while %s", why);
            finish(job, "TIMEOUT", reason);
            return;
        }
        log_job_debug(job->spec.id, NULL, "%s: back to its queue", why);
        pause_queue(job->w, job->queue);
        finish(job, NULL, NULL);
        return;
    }
    queue_had_room(job->w, job->queue);
    if (job->w->draining && job->task_id[0] == '\0') {
        finish(job, NULL, NULL); /* not submitted: give it back */
        return;
    }
    if (job->task_id[0] != '\0') {
        /* Never submit twice: a recorded task id is polled. */
        json_decref(job->spec.body);
        job->spec.body = NULL;
        schedule_poll(job, 0);
        return;
    }
    submit(job);
}

/* ------------------------------------------------------------------ */
/* 3. Submit once.                                                      */

static void on_submitted(const struct submit_result *r, void *arg);

static void submit(struct job *job)
{
    struct worker *w = job->w;
    size_t len;
    char *body;

    if (time_left(job) <= 0) {
        finish(job, "TIMEOUT",
               "deadline passed before the upstream "
               "accepted the job");
        return;
    }
    if (!upstream_can_submit(w->up, job->account)) {
        /* Its account tripped or left rotation since the claim: the job
         * waits in its queue for this or another account. */
        finish(job, NULL, NULL);
        return;
    }
    body = job_submit_body(&job->spec, w->cfg->notify_hook, &len);
    job->phase = PHASE_SUBMIT;
    job->submits++;
    job->call = upstream_submit(w->up, job->account, job->spec.action,
                                job->spec.mode, body, len, on_submitted, job);
    if (job->call == NULL)
        finish(job, "FAILURE", "could not start the submit request");
}

static void on_task_recorded(int rc, void *arg)
{
    struct job *job = arg;

    if (settle(job))
        return;
    if (rc == 0)
        job->task_unrecorded = 0;
}

/* Writes the accepted task id to the job record. If Redis is away it is
 * written again on reconnect (resume_stalled); the finish and hand-back
 * transactions also carry it, so it is never lost with the job. */
static void record_task(struct job *job)
{
    const struct worker *w = job->w;

    job->task_unrecorded = 1;
    /* With several accounts, follow-ups must find this task's account. */
    if (store_submitted(w->store, job->spec.id, job->task_id, job->submits,
                        w->cfg->naccounts > 1
                            ? upstream_account_name(w->up, job->account)
                            : NULL,
                        on_task_recorded, job) == 0)
        job->pending++;
}

static void retry_later(struct job *job, const char *reason,
                        long retry_after_ms, long floor_ms)
{
    const struct config *cfg = job->w->cfg;
    long delay = backoff_retry_delay(cfg->retry_base_ms, cfg->retry_max_ms,
                                     job->attempts, backoff_random());
    char delay_s[24];
    const char *fields[] = {"reason", reason, "delay_ms", delay_s};

    if (retry_after_ms > delay)
        delay = retry_after_ms;
    if (floor_ms > delay)
        delay = floor_ms;
    job->attempts++;
    snprintf(job->last_error, sizeof(job->last_error), "%s", reason);
    metrics_retry(job->phase == PHASE_RETRY_WAIT ? METRICS_RETRY_SUBMIT
                                                 : METRICS_RETRY_POLL);
    snprintf(delay_s, sizeof(delay_s), "%ld", delay);
    job_event(job, "retry", fields, 2);
    log_job_info(job->spec.id, job->task_id[0] ? job->task_id : NULL,
                 "retry in %ld ms: %s", delay, reason);
    set_timer(job, delay);
}

static void on_submitted(const struct submit_result *r, void *arg)
{
    struct job *job = arg;
    struct worker *w = job->w;

    job->call = NULL;
    switch (r->verdict) {
    case SUBMIT_ACCEPTED:
        snprintf(job->task_id, sizeof(job->task_id), "%s", r->task_id);
        job->attempts = 0;
        job->last_error[0] = '\0';
        /* The body (possibly megabytes of images) is not needed again. */
        json_decref(job->spec.body);
        job->spec.body = NULL;
        /* The task id reaches Redis before anything else happens to the
         * job: from here on it is only ever polled, never resubmitted. */
        record_task(job);
        log_job_debug(job->spec.id, job->task_id, "submitted%s",
                      r->in_queue ? " (queued upstream)" : "");
        schedule_poll(job, backoff_poll_delay(w->cfg->poll_schedule_ms,
                                              w->cfg->npoll_schedule, 0));
        return;
    case SUBMIT_MODAL:
        snprintf(job->task_id, sizeof(job->task_id), "%s", r->task_id);
        record_task(job);
        finish(job, "FAILURE",
               "modal input required: send a 'modal' job with body.taskId "
               "set to this result's task_id");
        return;
    case SUBMIT_PERMANENT:
        finish(job, "FAILURE", r->reason);
        return;
    case SUBMIT_REROUTE:
        /* Not the job's fault: its account left rotation (health.c); the
         * job goes back to its queue for another account, or waits. */
        log_job_warn(job->spec.id, NULL, "account %s: %s: back to its queue",
                     upstream_account_name(w->up, job->account), r->reason);
        finish(job, NULL, NULL);
        return;
    case SUBMIT_RETRY:
        break;
    }
    /* Limits and full queues are waited out (until the deadline); only
     * real failures count against the job. */
    if (!r->limited && (int)++job->failures >= w->cfg->submit_max_attempts) {
        char reason[700];

        snprintf(reason, sizeof(reason),
                 "upstream did not accept the job after %u attempts: %s",
                 job->failures, r->reason);
        finish(job, "FAILURE", reason);
        return;
    }
    if (w->draining) {
        /* Nothing was accepted: give it back for another worker. */
        finish(job, NULL, NULL);
        return;
    }
    job->phase = PHASE_RETRY_WAIT;
    retry_later(job, r->reason, r->retry_after_ms, 0);
}

/* ------------------------------------------------------------------ */
/* 4. Poll with the progressive schedule.                               */

static void on_fetched(struct task_result *r, void *arg);
static void on_cancel_flag(int rc, int set, void *arg);

/*
 * A poll delay, never below the account's minimum poll interval. libevent
 * keeps time with a cached, coarse monotonic clock, so a timer may fire
 * early by a scheduler tick or by however long the loop was busy: the
 * minimum gets a margin here, and on_timer() checks the true clock before
 * it reads the task again (min_poll_ok()).
 */
#define COARSE_CLOCK_MARGIN_MS 10

static long poll_floor(const struct job *job, long delay_ms)
{
    long min = upstream_min_poll_ms(job->w->up, job->account);

    if (min > 0)
        min += COARSE_CLOCK_MARGIN_MS;
    return delay_ms > min ? delay_ms : min;
}

/*
 * Whether the account's minimum poll interval has passed since the last
 * answer, or else schedules the rest. The answer arrived after the
 * upstream read the task and the next request leaves after this check,
 * so the upstream never sees two reads closer than the minimum.
 */
static int min_poll_ok(struct job *job)
{
    long min = upstream_min_poll_ms(job->w->up, job->account);
    int64_t waited = clock_mono_ms() - job->answered_ms;

    /* Both readings are cut to whole ms: only a gap above min is sure. */
    if (min <= 0 || job->answered_ms == 0 || waited > min)
        return 1;
    set_timer(job, (long)(min - waited) + COARSE_CLOCK_MARGIN_MS);
    return 0;
}

static void schedule_poll(struct job *job, long delay_ms)
{
    job->phase = PHASE_POLL_WAIT;
    if (job->w->draining) {
        finish(job, NULL, NULL); /* hand back: another worker polls it */
        return;
    }
    set_timer(job, poll_floor(job, delay_ms));
}

static void poll_now(struct job *job)
{
    /* The cancel flag is read before every fetch, so SET mjq:cancel:<id>
     * takes effect within one poll interval. */
    job->phase = PHASE_CANCEL;
    job->pending++;
    if (store_cancel_requested(job->w->store, job->spec.id, on_cancel_flag,
                               job) != 0)
        on_cancel_flag(-1, 0, job); /* Redis away: poll anyway */
}

static void on_cancel_flag(int rc, int set, void *arg)
{
    struct job *job = arg;
    struct worker *w = job->w;

    if (settle(job))
        return;
    /* rc != 0: the flag could not be read (Redis away); keep polling
     * upstream so the job still ends, and read it on the next poll. */
    if (rc == 0 && set) {
        finish(job, "CANCEL", "cancelled by request (cancel key set)");
        return;
    }
    if (w->draining) {
        finish(job, NULL, NULL);
        return;
    }
    job->phase = PHASE_FETCH;
    job->polls++;
    job->call = upstream_poll(w->up, job->account, job->spec.mode, job->task_id,
                              on_fetched, job);
    if (job->call == NULL)
        finish(job, "FAILURE", "could not start the fetch request");
}

static void progress_event(struct job *job, const struct task_result *r)
{
    const char *fields[] = {"status",    r->status, "progress",
                            r->progress, "task_id", job->task_id};

    if (strcmp(job->status, r->status) == 0 &&
        strcmp(job->progress, r->progress) == 0)
        return; /* on change only */
    snprintf(job->status, sizeof(job->status), "%s", r->status);
    snprintf(job->progress, sizeof(job->progress), "%s", r->progress);
    job_event(job, "progress", fields, 3);
}

/* Keeps the latest task for the result: its JSON text, and on SUCCESS its
 * buttons and image.
 * The reply's own text is copied when there is one, which is cheaper than
 * serialising the parsed tree again. */
static void keep_task(struct job *job, struct task_result *r)
{
    size_t off, len;

    if (r->raw == NULL)
        return;
    /* Each poll overwrites the previous poll's copy in place: freeing and
     * allocating thousands of long-lived copies per second fragments the
     * heap (docs/benchmarks.md). */
    if (r->raw_len + 1 > job->task_cap) {
        job->result_text[0] = xrealloc(job->result_text[0], r->raw_len + 1);
        job->task_cap = r->raw_len + 1;
    }
    memcpy(job->result_text[0], r->raw, r->raw_len);
    job->result_text[0][r->raw_len] = '\0';
    if (r->verdict == TASK_SUCCESS &&
        jsonscan_member(r->raw, r->raw_len, "buttons", &off, &len) == 0 &&
        len > 0 && r->raw[off] == '[')
        job->result_text[1] = xmemdup(r->raw + off, len);
    if (r->verdict == TASK_SUCCESS && r->image_url[0] != '\0')
        job->result_text[2] = xstrdup(r->image_url);
    job->result.task = job->result_text[0];
    job->result.buttons = job->result_text[1];
    job->result.image_url = job->result_text[2];
}

static void on_fetched(struct task_result *r, void *arg)
{
    struct job *job = arg;
    const struct config *cfg = job->w->cfg;
    long next = poll_floor(job, backoff_poll_delay(cfg->poll_schedule_ms,
                                                   cfg->npoll_schedule,
                                                   ++job->poll_index));

    job->call = NULL;
    job->answered_ms = clock_mono_ms();
    if (r->verdict != TASK_NOT_FOUND && r->verdict != TASK_RETRY &&
        r->verdict != TASK_PERMANENT) {
        job->seen = 1;
        job->not_found = 0;
        job->attempts = 0;
        job->last_error[0] = '\0';
        progress_event(job, r);
    }
    switch (r->verdict) {
    case TASK_RUNNING:
        keep_task(job, r); /* a cancel or the deadline may end it next */
        if (time_left(job) <= 0)
            break; /* the timer below turns it into TIMEOUT */
        schedule_poll(job, next);
        return;
    case TASK_SUCCESS:
        keep_task(job, r);
        finish(job, "SUCCESS", NULL);
        return;
    case TASK_FAILURE:
        keep_task(job, r);
        finish(job, "FAILURE", r->reason);
        return;
    case TASK_CANCEL:
        keep_task(job, r);
        finish(job, "CANCEL", r->reason);
        return;
    case TASK_MODAL:
        keep_task(job, r);
        finish(job, "FAILURE",
               "modal input required: send a 'modal' job with body.taskId "
               "set to this result's task_id");
        return;
    case TASK_NOT_FOUND:
        if (job->w->draining && !job->seen) {
            finish(job, NULL, NULL);
            return;
        }
        /* Relays insert their row just after answering the submit, so a
         * task may be invisible for a moment; later it was lost. */
        job->not_found++;
        if (job->seen || (int)job->not_found >= cfg->lost_after_not_found) {
            finish(job, "FAILURE", "task lost upstream");
            return;
        }
        job->phase = PHASE_POLL_WAIT;
        retry_later(job, "task not visible upstream yet", -1, next);
        return;
    case TASK_RETRY:
        if (job->w->draining) {
            finish(job, NULL, NULL);
            return;
        }
        job->phase = PHASE_POLL_WAIT;
        retry_later(job, r->reason, r->retry_after_ms, next);
        return;
    case TASK_PERMANENT:
        finish(job, "FAILURE", r->reason);
        return;
    }
    schedule_poll(job, 0);
}

/* One timer per job: retry, next poll, or the deadline. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct job *job = arg;

    (void)fd;
    (void)what;
    if (job->phase == PHASE_STALLED) {
        if (store_is_up(job->w->store))
            resume_one(job);
        return;
    }
    if (time_left(job) <= 0 &&
        (job->phase == PHASE_POLL_WAIT || job->phase == PHASE_RETRY_WAIT)) {
        char reason[300];

        snprintf(reason, sizeof(reason), "%s%s%s%s",
                 job->task_id[0] ? "deadline passed before the upstream "
                                   "task ended"
                                 : "deadline passed before the upstream "
                                   "accepted the job",
                 job->last_error[0] ? " (last trouble: " : "", job->last_error,
                 job->last_error[0] ? ")" : "");
        finish(job, "TIMEOUT", reason);
        return;
    }
    if (job->phase == PHASE_RETRY_WAIT) {
        if (job->w->draining)
            finish(job, NULL, NULL);
        else
            submit(job);
    } else if (job->phase == PHASE_POLL_WAIT) {
        /* Never wait past the deadline for the next poll. */
        if (min_poll_ok(job))
            poll_now(job);
    }
}

/* ------------------------------------------------------------------ */
/* 5. Finish: one MULTI/EXEC publishes the result and retires the job.  */

static void on_finished(int rc, void *arg);
static void on_handed_back(int rc, void *arg);

static void send_result(struct job *job)
{
    int rc;

    if (job->result.status == NULL) {
        struct store_handback_req req = {
            .id = job->spec.id,
            .claimed = job->claimed,
            .task_id = job->task_id,
            .payload = job->payload,
            .len = job->payload_len,
            .queue = job->queue,
            .submits = job->submits,
            .polls = job->polls,
            .leases = job->leases,
        };

        job->phase = PHASE_HANDBACK;
        rc = store_handback(job->w->store, &req, on_handed_back, job);
    } else {
        job->phase = PHASE_FINISH;
        job->result.finished_ms = clock_wall_ms();
        rc = store_finish(job->w->store, &job->result, on_finished, job);
    }
    if (rc == 0)
        job->pending++;
    if (rc != 0) {
        job->stalled_in = job->phase;
        job->phase = PHASE_STALLED;
    }
}

/*
 * Ends a job with status and reason (NULL status: hand it back to the
 * queue during a drain). Cancels whatever the job was waiting for.
 */
static void finish(struct job *job, const char *status, const char *reason)
{
    struct store_result *r = &job->result;

    evtimer_del(job->timer);
    upstream_cancel(job->call);
    job->call = NULL;
    if (status != NULL) {
        free(job->fail_reason);
        job->fail_reason = xstrdup(reason != NULL ? reason : "");
        r->id = job->spec.id;
        r->status = status;
        if (job->spec.action != ACTION_COUNT)
            r->action = job_action_name(job->spec.action);
        r->task_id = job->task_id;
        r->fail_reason = job->fail_reason;
        r->meta = job->result_text[3];
        /* The last task fetched, whatever ended the job (a cancel or a
         * deadline too): "task" is present once fetched. */
        r->task = job->result_text[0];
        r->started_ms = job->started_ms;
        r->submits = job->submits;
        r->polls = job->polls;
        r->reply_to = job->spec.reply_to;
        r->payload = job->payload;
        r->payload_len = job->payload_len;
        r->leases = job->leases;
        /* DUPLICATE and INVALID leave the job record alone. */
        r->mark_done = job->claimed;
        if (strcmp(status, "SUCCESS") != 0 && strcmp(status, "INVALID") != 0)
            log_job_info(job->spec.id[0] ? job->spec.id : NULL,
                         job->task_id[0] ? job->task_id : NULL, "%s: %s",
                         status, job->fail_reason);
    }
    send_result(job);
}

static void on_finished(int rc, void *arg)
{
    struct job *job = arg;
    struct worker *w = job->w;

    if (settle(job))
        return;
    if (rc < 0) {
        /* Unknown or refused: check, then resend. */
        stall(job, PHASE_FINISH, rc);
        return;
    }
    if (rc == 2) {
        /* The job's reply_to names a key that is not a stream: nothing
         * was written. Its result goes to the shared stream instead. */
        log_job_error(job->spec.id, job->task_id[0] ? job->task_id : NULL,
                      "reply_to %s names a Redis key that is not a stream: "
                      "the result goes to the shared results stream",
                      job->spec.reply_to);
        job->result.reply_to = NULL;
        send_result(job);
        return;
    }
    if (rc == 1) {
        /* The payload had left our processing list: the sweep handed it
         * to another worker while we were cut off, and that one publishes
         * its result. Nothing was written. */
        log_job_warn(job->spec.id, job->task_id[0] ? job->task_id : NULL,
                     "not published: the job was taken over by another "
                     "worker while our heartbeat had expired");
        job_free(job);
        take_more(w);
        maybe_exit(w);
        return;
    }
    w->finished++;
    {
        enum metrics_status st;

        if (metrics_status_parse(job->result.status, &st) == 0)
            metrics_job_finished(st, job->result.finished_ms - job->started_ms);
    }
    log_job_debug(job->spec.id, job->task_id[0] ? job->task_id : NULL, "%s",
                  job->result.status);
    if (job->leases != NULL)
        unpause_all(w); /* its capacity is free again */
    job_free(job);
    take_more(w);
    maybe_exit(w);
}

static void on_handed_back(int rc, void *arg)
{
    struct job *job = arg;
    struct worker *w = job->w;

    if (settle(job))
        return;
    if (rc < 0) {
        stall(job, PHASE_HANDBACK, rc);
        return;
    }
    if (job->announced)
        metrics_job_handed_back(); /* not a job that found no room */
    if (w->draining)
        log_job_info(job->spec.id, job->task_id[0] ? job->task_id : NULL,
                     "handed back for another worker to resume");
    job_free(job);
    take_more(w);
    maybe_exit(w);
}

/* ------------------------------------------------------------------ */
/* Redis coming and going.                                              */

static void on_still_held(int rc, int held, void *arg)
{
    struct job *job = arg;

    if (settle(job))
        return;
    if (rc != 0) {
        stall(job, job->stalled_in, rc);
        return;
    }
    if (held) {
        send_result(job);
        return;
    }
    /* The transaction ran; only its reply was lost. */
    if (job->stalled_in == PHASE_FINISH)
        on_finished(0, job);
    else
        on_handed_back(0, job);
}

/* Redoes what each stalled job lost when the connection dropped. */
static void resume_stalled(struct worker *w)
{
    struct job *job, *next;

    for (job = w->jobs; job != NULL; job = next) {
        next = job->next;
        /* A finish or hand-back carries the task id itself (and may have
         * run already: its record must not go back to "submitted"). */
        int ending = job->phase == PHASE_FINISH ||
                     job->phase == PHASE_HANDBACK ||
                     (job->phase == PHASE_STALLED &&
                      (job->stalled_in == PHASE_FINISH ||
                       job->stalled_in == PHASE_HANDBACK));

        if (job->task_unrecorded && !ending)
            record_task(job);
        if (job->phase != PHASE_STALLED)
            continue;
        resume_one(job);
    }
}

/* Redoes the Redis step a stalled job is waiting on. */
static void resume_one(struct job *job)
{
    struct worker *w = job->w;

    switch (job->stalled_in) {
    case PHASE_CLAIM:
        job->phase = PHASE_CLAIM;
        if (send_claim(job) != 0)
            job->phase = PHASE_STALLED;
        else
            job->pending++;
        break;
    case PHASE_FINISH:
    case PHASE_HANDBACK:
        job->phase = job->stalled_in;
        if (store_still_held(w->store, job->payload, job->payload_len,
                             on_still_held, job) != 0)
            job->phase = PHASE_STALLED;
        else
            job->pending++;
        break;
    default:
        break;
    }
}

/*
 * Our heartbeat had expired (this worker was cut off from Redis, or
 * stopped, for longer than heartbeat_ttl_ms), so a supervisor's sweep may
 * have handed our jobs to other workers. A job whose payload left our
 * processing list and whose record another worker now owns (or finished)
 * is dropped here without a result: its new owner publishes it.
 */
static void on_taken_over(int rc, int set, void *arg)
{
    struct job *job = arg;

    if (settle(job))
        return;
    if (rc != 0 || !set || job->phase == PHASE_FINISH ||
        job->phase == PHASE_HANDBACK || job->phase == PHASE_STALLED)
        return;
    log_job_warn(job->spec.id, job->task_id[0] ? job->task_id : NULL,
                 "taken over by another worker while our heartbeat had "
                 "expired: dropped here, its new owner finishes it");
    job->abandoned = 1;
    evtimer_del(job->timer);
    upstream_cancel(job->call);
    job->call = NULL;
    if (job->pending == 0) {
        struct worker *w = job->w;

        job_free(job);
        take_more(w);
        maybe_exit(w);
    }
}

static void on_lapse_listed(int rc, struct store_item *items, size_t n,
                            void *arg)
{
    struct worker *w = arg;

    if (rc != 0)
        return;
    for (struct job *job = w->jobs; job != NULL; job = job->next) {
        int held = 0;

        if (!job->claimed || job->abandoned || job->phase == PHASE_CLAIM ||
            job->phase == PHASE_FINISH || job->phase == PHASE_HANDBACK ||
            job->phase == PHASE_STALLED)
            continue;
        for (size_t i = 0; i < n && !held; i++)
            held = items[i].len == job->payload_len &&
                   memcmp(items[i].payload, job->payload, items[i].len) == 0;
        if (!held &&
            store_taken_over(w->store, job->spec.id, on_taken_over, job) == 0)
            job->pending++;
    }
}

static void on_lapse(void *arg)
{
    struct worker *w = arg;

    log_warn("our heartbeat had expired: checking for jobs taken over by "
             "other workers");
    store_list_held(w->store, on_lapse_listed, w);
}

/* The heartbeat's value: what `mjq status` shows of this worker, with
 * each account's state as this worker sees it. */
static void send_heartbeat(struct worker *w)
{
    char info[256 + MJQ_MAX_ACCOUNTS * 64];
    int n = snprintf(info, sizeof(info),
                     "{\"pid\":%ld,\"jobs\":%d,\"finished\":%llu,"
                     "\"draining\":%d,\"accounts\":{",
                     (long)getpid(), w->njobs, w->finished, w->draining);

    for (size_t i = 0; i < w->cfg->naccounts && n < (int)sizeof(info); i++)
        n += snprintf(info + n, sizeof(info) - (size_t)n, "%s\"%s\":\"%s\"",
                      i > 0 ? "," : "", w->cfg->accounts[i].name,
                      health_state_name(upstream_health(w->up, (int)i)->state));
    if (n < (int)sizeof(info))
        snprintf(info + n, sizeof(info) - (size_t)n, "}}");
    store_heartbeat(w->store, info);
}

/* An account changed state (health.c): say so, and when it is back, let
 * the queues that waited for it take again. Reasons are secret-free. */
static void on_account(int account, enum health_change change,
                       const struct health *h, void *arg)
{
    struct worker *w = arg;
    const char *name = upstream_account_name(w->up, account);
    static const char *const changes[] = {
        [HEALTH_SAME] = "same",
        [HEALTH_OPENED] = "breaker_opened",
        [HEALTH_CLOSED] = "breaker_closed",
        [HEALTH_LEFT] = "left_rotation",
        [HEALTH_RETURNED] = "returned",
    };
    const char *fields[] = {"account", name,
                            "change",  changes[change],
                            "state",   health_state_name(h->state),
                            "reason",  h->reason};

    static const enum metrics_account_change metric[] = {
        [HEALTH_OPENED] = METRICS_ACCOUNT_OPENED,
        [HEALTH_CLOSED] = METRICS_ACCOUNT_CLOSED,
        [HEALTH_LEFT] = METRICS_ACCOUNT_LEFT,
        [HEALTH_RETURNED] = METRICS_ACCOUNT_RETURNED,
    };

    store_event(w->store, "account", NULL, fields, h->reason[0] ? 4 : 3);
    if (change != HEALTH_SAME)
        metrics_account_change(account, metric[change]);
    metrics_account_down(account, h->state != HEALTH_OK);
    if (change == HEALTH_CLOSED || change == HEALTH_RETURNED) {
        log_info("upstream account %s: back in rotation", name);
        unpause_all(w);
        take_more(w);
    } else if (change == HEALTH_OPENED) {
        log_warn("upstream account %s: circuit breaker open, submits "
                 "paused: %s",
                 name, h->reason);
    } else {
        log_warn("upstream account %s: out of rotation: %s", name, h->reason);
    }
}

static void on_store_up(void *arg)
{
    struct worker *w = arg;

    if (!w->announced) {
        char pid[24];
        const char *fields[] = {"pid", pid};

        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        store_event(w->store, "worker_started", NULL, fields, 1);
        w->announced = 1;
    } else {
        metrics_redis_reconnected();
    }
    store_publish_accounts(w->store);
    send_heartbeat(w);
    resume_stalled(w);
    w->taking = 0;
    take_more(w);
}

static void on_store_down(void *arg)
{
    struct worker *w = arg;

    log_warn("redis unreachable: not taking jobs; %d in flight keep "
             "polling upstream",
             w->njobs);
    w->taking = 0;
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    if (store_is_up(w->store))
        send_heartbeat(w);
}

/* ------------------------------------------------------------------ */
/* Shutdown.                                                            */

static void on_retired(int rc, void *arg)
{
    struct worker *w = arg;

    (void)rc;
    event_base_loopexit(w->base, NULL);
}

/* The last job has gone: remove the heartbeat, then leave the loop once
 * Redis confirmed it (or at once if Redis is away). */
static void maybe_exit(struct worker *w)
{
    if (w->draining && w->njobs == 0 && !w->retiring) {
        w->retiring = 1;
        flush_finished(w); /* before the heartbeat's removal */
        store_retire(w->store, on_retired, w);
    }
}

/*
 * SIGTERM: stop taking; jobs that wait (retry or poll) are handed back at
 * once for another worker to resume; a submit or fetch on the wire is let
 * finish (its answer decides: a task id is recorded, then handed back);
 * results being written are let land. Bounded by shutdown_timeout.
 */
static void drain(struct worker *w)
{
    struct job *job, *next;
    struct timeval tv = {w->cfg->shutdown_timeout_s, 0};
    const char *fields[] = {"reason", w->stop_reason};

    w->draining = 1;
    log_info("draining (%s): %d jobs in flight", w->stop_reason, w->njobs);
    store_event(w->store, "worker_stopping", NULL, fields, 1);
    store_wait_cancel(w->store);
    evtimer_add(w->drain_timer, &tv);
    for (job = w->jobs; job != NULL; job = next) {
        next = job->next;
        if (job->phase == PHASE_POLL_WAIT || job->phase == PHASE_RETRY_WAIT)
            finish(job, NULL, NULL);
    }
    maybe_exit(w);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    log_warn("shutdown timeout: exiting with %d jobs still in the "
             "processing list (another worker's recovery resumes them)",
             w->njobs);
    w->exit_code = 1;
    event_base_loopexit(w->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;

    (void)what;
    if (sig == SIGHUP || sig == SIGPIPE)
        return; /* the supervisor reloads by replacing workers */
    if (w->draining) {
        log_warn("second signal: exiting now; in-flight jobs stay in the "
                 "processing list for recovery");
        w->exit_code = 1;
        event_base_loopbreak(w->base);
        return;
    }
    w->stop_reason = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    drain(w);
}

/* Our supervisor died (EOF on its channel, report.h): a worker must not
 * outlive it. */
static void on_parent_gone(void *arg)
{
    struct worker *w = arg;

    if (!w->draining) {
        log_warn("supervisor gone: draining");
        w->stop_reason = "supervisor exited";
        drain(w);
    }
}

/* ------------------------------------------------------------------ */
/* Entry point.                                                         */

static void make_worker_id(char *buf, size_t len)
{
    char host[64] = "host";
    const char *env = getenv("MJQ_WORKER_ID");

    if (env != NULL && job_id_valid(env, strlen(env))) {
        snprintf(buf, len, "%s", env);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    for (char *p = host; *p; p++)
        if (!job_id_valid(p, 1))
            *p = '-';
    snprintf(buf, len, "%s-%ld-%04x", host, (long)getpid(),
             (unsigned)(backoff_random() * 65536));
}

void worker_stop_signals(int how)
{
    sigset_t stops;

    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGHUP);
    sigprocmask(how, &stops, NULL);
}

/* The worker's life: set up the loop, Redis, the upstream accounts and
 * the signals; run until drained; tear down. Returns the exit code. */
static int run(struct config *cfg)
{
    struct worker w;
    struct timeval hb = {cfg->heartbeat_ms / 1000,
                         (cfg->heartbeat_ms % 1000) * 1000};
    struct timeval tick = {1, 0};

    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    make_worker_id(w.id, sizeof(w.id));
    log_setup(cfg->log_level, cfg->log_format, w.id);
    log_set_worker(w.id);
    w.base = event_base_new();
    if (w.base == NULL) {
        log_error("cannot create the event loop");
        return 1;
    }
    w.up = upstream_new(w.base, cfg, on_account, &w);
    if (w.up == NULL) {
        log_error("cannot initialise libcurl");
        event_base_free(w.base);
        return 1;
    }
    w.store = store_new(w.base, cfg, w.id, 1, on_store_up, on_store_down, &w);
    store_on_lapse(w.store, on_lapse);
    w.sigterm = evsignal_new(w.base, SIGTERM, on_signal, &w);
    w.sigint = evsignal_new(w.base, SIGINT, on_signal, &w);
    w.sighup = evsignal_new(w.base, SIGHUP, on_signal, &w);
    w.sigpipe = evsignal_new(w.base, SIGPIPE, on_signal, &w);
    evsignal_add(w.sigterm, NULL);
    evsignal_add(w.sigint, NULL);
    evsignal_add(w.sighup, NULL);
    evsignal_add(w.sigpipe, NULL);
    worker_stop_signals(SIG_UNBLOCK); /* handled from here on */
    w.heartbeat = event_new(w.base, -1, EV_PERSIST, on_heartbeat, &w);
    evtimer_add(w.heartbeat, &hb);
    w.take_timer = event_new(w.base, -1, EV_PERSIST, on_take_timer, &w);
    evtimer_add(w.take_timer, &tick);
    w.drain_timer = evtimer_new(w.base, on_drain_timeout, &w);
    w.unpause = evtimer_new(w.base, on_unpause, &w);
    w.full_streak = xcalloc(cfg->nqueues, sizeof(*w.full_streak));
    {
        const char *names[MJQ_MAX_ACCOUNTS];

        for (size_t i = 0; i < cfg->naccounts; i++)
            names[i] = cfg->accounts[i].name;
        metrics_set_accounts(names, cfg->naccounts);
    }
    w.report = report_open(w.base, on_parent_gone, &w);

    log_info("worker started: concurrency %d, queues %zu, upstream %s",
             cfg->concurrency, cfg->nqueues, cfg->accounts[0].base_url);

    event_base_dispatch(w.base);

    log_info("worker stopped: %llu jobs finished", w.finished);
    /* The final counters, so the supervisor's totals miss nothing. */
    metrics_set_in_flight(w.njobs);
    report_send(w.report);
    report_free(w.report);
    /* Free the store first: its pending callbacks still see live jobs. */
    store_free(w.store);
    w.store = NULL;
    while (w.jobs != NULL)
        job_free(w.jobs);
    upstream_free(w.up);
    event_free(w.sigterm);
    event_free(w.sigint);
    event_free(w.sighup);
    event_free(w.sigpipe);
    event_free(w.heartbeat);
    event_free(w.take_timer);
    event_free(w.drain_timer);
    event_free(w.unpause);
    free(w.full_streak);
    event_base_free(w.base);
    return w.exit_code;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mjq worker [--config FILE] [--set KEY=VALUE]... "
            "[--FLAG VALUE]...\n\n"
            "Runs one worker process: takes jobs from the Redis queues, "
            "drives each\nthrough the MJ API and publishes one result per "
            "job (docs/contract.md).\nStops gracefully on SIGTERM or "
            "SIGINT (a second one exits at once).\n\n"
            "Exit codes: 0 drained cleanly, 1 runtime failure or forced "
            "exit,\n%d fatal configuration (never respawned), 64 usage.\n\n"
            "Settings (flag, environment, file key, default):\n",
            MJQ_EXIT_CONFIG);
    config_usage(out);
}

/*
 * Shared by `worker` and `run`: turns argv into a config path and
 * "key=value" overrides. Returns 0, 1 after --help, or -1 on a usage
 * error (message printed). *flags is malloc'd; the strings in it too.
 */
int worker_parse_args(int argc, char **argv, void (*help)(FILE *),
                      const char **config_path, char ***flags, size_t *nflags)
{
    *flags = xcalloc((size_t)argc + 1, sizeof(char *));
    *nflags = 0;
    *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        const char *eq;
        char name[128];
        const char *key;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            help(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "mjq: unexpected argument '%s' (see --help)\n",
                    arg);
            return -1;
        }
        eq = strchr(arg, '=');
        snprintf(name, sizeof(name), "%.*s",
                 (int)(eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2)),
                 arg + 2);
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        if (value == NULL) {
            fprintf(stderr, "mjq: --%s needs a value\n", name);
            return -1;
        }
        if (strcmp(name, "config") == 0) {
            *config_path = value;
            continue;
        }
        if (strcmp(name, "set") == 0) {
            if (strchr(value, '=') == NULL) {
                fprintf(stderr, "mjq: --set needs KEY=VALUE, got '%s'\n",
                        value);
                return -1;
            }
            (*flags)[(*nflags)++] = xstrdup(value);
            continue;
        }
        key = config_flag_key(name);
        if (key == NULL) {
            fprintf(stderr, "mjq: unknown option --%s (see --help)\n", name);
            return -1;
        }
        {
            size_t len = strlen(key) + strlen(value) + 2;
            char *kv = xmalloc(len);

            snprintf(kv, len, "%s=%s", key, value);
            (*flags)[(*nflags)++] = kv;
        }
    }
    return 0;
}

void worker_free_args(char **flags, size_t nflags)
{
    for (size_t i = 0; i < nflags; i++)
        free(flags[i]);
    free(flags);
}

int worker_main(int argc, char **argv)
{
    struct config cfg;
    struct config_error err;
    const char *path;
    char **flags;
    size_t nflags;
    int rc;

    worker_stop_signals(SIG_BLOCK);
    rc = worker_parse_args(argc, argv, usage, &path, &flags, &nflags);
    if (rc != 0) {
        worker_free_args(flags, nflags);
        return rc > 0 ? 0 : 64;
    }
    memset(&cfg, 0, sizeof(cfg));
    if (config_load(&cfg, path, flags, nflags, &err) != 0) {
        char line[1024];

        config_error_format(&err, line, sizeof(line));
        fprintf(stderr, "mjq worker: %s\n", line);
        worker_free_args(flags, nflags);
        config_free(&cfg);
        return MJQ_EXIT_CONFIG;
    }
    worker_free_args(flags, nflags);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "mjq worker: cannot initialise libcurl\n");
        config_free(&cfg);
        return 1;
    }
    rc = run(&cfg);
    curl_global_cleanup();
    config_free(&cfg);
    return rc;
}
