#include "worker.h"

#include <errno.h>
#include <getopt.h>
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
    int reclaiming;       /* claim resent after its reply was lost */
    int pending;          /* store commands whose callback has this job */
    int abandoned;        /* taken over elsewhere: freed once pending is 0 */
    char task_id[64];     /* upstream task id, "" until accepted */
    int task_unrecorded;  /* task_id not yet confirmed in Redis */

    int64_t started_ms;  /* first take, epoch ms (for the result) */
    int64_t deadline;    /* monotonic ms */
    long submits;        /* submit requests sent, all owners */
    long polls;          /* fetch requests sent, all owners */
    unsigned attempts;   /* consecutive transient failures */
    unsigned stalls;     /* Redis refusals of this job's writes */
    unsigned poll_index; /* position in the poll schedule */
    int seen;            /* upstream has shown the task at least once */
    unsigned not_found;  /* consecutive "not found" answers */
    char status[16];     /* last upstream status, for progress events */
    char progress[16];

    struct event *timer;       /* retry / poll / deadline */
    struct http_request *http; /* request in flight, or NULL */

    /* The result, kept until Redis has it (see finish()). */
    struct store_result result;
    char *result_text[4]; /* owned strings inside result */
    size_t task_cap;      /* bytes allocated for result_text[0] */
    char fail_reason[600];
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
    upstream_cancel(job->http);
    event_free(job->timer);
    job_spec_clear(&job->spec);
    for (size_t i = 0; i < sizeof(job->result_text) / sizeof(char *); i++)
        free(job->result_text[i]);
    free(job->payload);
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

static void start_job(struct worker *w, struct store_item *item)
{
    struct job *job = xcalloc(1, sizeof(*job));
    struct job_error err;
    const char *queue = w->cfg->queues[item->queue];

    job->w = w;
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

    metrics_job_taken();
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
        finish(job, "INVALID", reason);
        return;
    }
    if (job->spec.enqueued_ms > 0)
        metrics_queue_wait(job->started_ms - job->spec.enqueued_ms);
    /* meta is echoed byte for byte from the payload: keep its text, not
     * the parsed tree. */
    if (job->spec.meta_text != NULL)
        job->result_text[3] = xmemdup(job->spec.meta_text, job->spec.meta_len);
    json_decref(job->spec.meta);
    job->spec.meta = NULL;
    {
        const char *fields[] = {"queue", queue, "action",
                                job_action_name(job->spec.action)};

        job_event(job, "taken", fields, 2);
    }
    job->phase = PHASE_CLAIM;
    if (store_claim(w->store, job->spec.id, queue,
                    job_action_name(job->spec.action), on_claimed, job) != 0)
        stall(job, PHASE_CLAIM, -1);
    else
        job->pending++;
}

/* 1 if another job in memory has the same id (a duplicate payload). */
static int holds_other_copy(const struct job *job)
{
    for (const struct job *o = job->w->jobs; o != NULL; o = o->next)
        if (o != job && o->claimed && !o->abandoned &&
            strcmp(o->spec.id, job->spec.id) == 0)
            return 1;
    return 0;
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
    /* "mine" on a first claim: another copy of this id running here is a
     * duplicate; with no such copy the record is ours from before (a take
     * reply that arrived after our heartbeat lapsed), so resume it. */
    if (info->kind == CLAIM_DONE || info->kind == CLAIM_BUSY ||
        (info->kind == CLAIM_MINE && !job->reclaiming &&
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
    if (info->kind == CLAIM_RESUME || info->kind == CLAIM_MINE) {
        /* Resume where the previous owner stopped; the deadline runs from
         * the first take, not from this one. */
        snprintf(job->task_id, sizeof(job->task_id), "%s", info->task_id);
        if (info->taken_ms > 0)
            job->started_ms = info->taken_ms;
        job->submits = info->submits;
        job->polls = info->polls;
        if (info->kind == CLAIM_RESUME && info->owner[0] != '\0') {
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
    timeout_ms = job->spec.timeout_ms > 0 ? job->spec.timeout_ms
                                          : job->w->cfg->job_timeout_s * 1000;
    job->deadline =
        clock_mono_ms() + timeout_ms - (clock_wall_ms() - job->started_ms);
    if (info->cancelled) {
        finish(job, "CANCEL", "cancelled before submit");
        return;
    }
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
    body = job_submit_body(&job->spec, w->cfg->notify_hook, &len);
    job->phase = PHASE_SUBMIT;
    job->submits++;
    job->http = upstream_submit(w->up, job->spec.action, job->spec.mode, body,
                                len, on_submitted, job);
    if (job->http == NULL)
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
    job->task_unrecorded = 1;
    if (store_submitted(job->w->store, job->spec.id, job->task_id, job->submits,
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

    job->http = NULL;
    switch (r->verdict) {
    case SUBMIT_ACCEPTED:
        snprintf(job->task_id, sizeof(job->task_id), "%s", r->task_id);
        job->attempts = 0;
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
    case SUBMIT_RETRY:
        break;
    }
    if ((int)job->attempts + 1 >= w->cfg->submit_max_attempts) {
        char reason[700];

        snprintf(reason, sizeof(reason),
                 "upstream did not accept the job after %u attempts: %s",
                 job->attempts + 1, r->reason);
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

static void schedule_poll(struct job *job, long delay_ms)
{
    job->phase = PHASE_POLL_WAIT;
    if (job->w->draining) {
        finish(job, NULL, NULL); /* hand back: another worker polls it */
        return;
    }
    set_timer(job, delay_ms);
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
    job->http =
        upstream_fetch(w->up, job->spec.mode, job->task_id, on_fetched, job);
    if (job->http == NULL)
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
    long next = backoff_poll_delay(cfg->poll_schedule_ms, cfg->npoll_schedule,
                                   ++job->poll_index);

    job->http = NULL;
    if (r->verdict != TASK_NOT_FOUND && r->verdict != TASK_RETRY &&
        r->verdict != TASK_PERMANENT) {
        job->seen = 1;
        job->not_found = 0;
        job->attempts = 0;
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
        finish(job, "TIMEOUT",
               job->task_id[0] ? "deadline passed before the upstream "
                                 "task ended"
                               : "deadline passed before the upstream "
                                 "accepted the job");
        return;
    }
    if (job->phase == PHASE_RETRY_WAIT) {
        if (job->w->draining)
            finish(job, NULL, NULL);
        else
            submit(job);
    } else if (job->phase == PHASE_POLL_WAIT) {
        /* Never wait past the deadline for the next poll. */
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
        job->phase = PHASE_HANDBACK;
        rc = store_handback(job->w->store, job->spec.id, job->claimed,
                            job->task_id, job->payload, job->payload_len,
                            job->queue, job->submits, job->polls,
                            on_handed_back, job);
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
    upstream_cancel(job->http);
    job->http = NULL;
    if (status != NULL) {
        snprintf(job->fail_reason, sizeof(job->fail_reason), "%s",
                 reason != NULL ? reason : "");
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
    if (rc != 0) {
        /* Unknown or refused: check, then resend. */
        stall(job, PHASE_FINISH, rc);
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
    if (rc != 0) {
        stall(job, PHASE_HANDBACK, rc);
        return;
    }
    metrics_job_handed_back();
    log_job_info(job->spec.id, job->task_id[0] ? job->task_id : NULL,
                 "handed back for another worker to resume");
    job_free(job);
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
        if (job->task_unrecorded && job->phase != PHASE_FINISH &&
            job->phase != PHASE_HANDBACK)
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
        job->reclaiming = 1;
        if (store_claim(w->store, job->spec.id, w->cfg->queues[job->queue],
                        job_action_name(job->spec.action), on_claimed,
                        job) != 0)
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
    upstream_cancel(job->http);
    job->http = NULL;
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

static void send_heartbeat(struct worker *w)
{
    char info[256];

    snprintf(info, sizeof(info),
             "{\"pid\":%ld,\"jobs\":%d,\"finished\":%llu,\"draining\":%d}",
             (long)getpid(), w->njobs, w->finished, w->draining);
    store_heartbeat(w->store, info);
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

/* Until multi-account support, one upstream account (metrics.h). */
static const char *const default_account[] = {"default"};

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
    w.up = upstream_new(w.base, cfg);
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
    w.heartbeat = event_new(w.base, -1, EV_PERSIST, on_heartbeat, &w);
    evtimer_add(w.heartbeat, &hb);
    w.take_timer = event_new(w.base, -1, EV_PERSIST, on_take_timer, &w);
    evtimer_add(w.take_timer, &tick);
    w.drain_timer = evtimer_new(w.base, on_drain_timeout, &w);
    metrics_set_accounts(default_account, 1);
    w.report = report_open(w.base, on_parent_gone, &w);

    log_info("worker started: concurrency %d, queues %zu, upstream %s",
             cfg->concurrency, cfg->nqueues, cfg->api_base_url);

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
