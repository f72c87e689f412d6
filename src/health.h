#ifndef MJQ_HEALTH_H
#define MJQ_HEALTH_H

#include <stdint.h>

/*
 * The health of one upstream account as this process sees it: a circuit
 * breaker for transport errors and 5xx, and rotation for accounts whose
 * key is refused or whose quota ran out. Pure state machine: callers pass
 * the time (monotonic ms), so the unit tests drive it without clocks.
 *
 *   OK ──(breaker_failures transient in a row)──▶ OPEN ──probe ok──▶ OK
 *   OK ──(key refused / out of quota)──────────▶ OUT  ──probe ok──▶ OK
 *
 * Only OK takes submits. OPEN and OUT are tested by one probe request at a
 * time when probe_at comes; a failed probe of an OPEN account doubles its
 * pause (up to 32 times the first). Requests already running (polls of
 * tasks the account holds) go on in every state.
 */

enum health_state {
    HEALTH_OK,   /* in rotation: takes submits */
    HEALTH_OPEN, /* breaker open after transient failures */
    HEALTH_OUT,  /* out of rotation: key refused, or out of quota */
};

/* What one answer of the account says about the account itself. */
enum health_signal {
    HEALTH_SIG_NONE,      /* nothing: a rate limit, a full queue */
    HEALTH_SIG_OK,        /* it answered properly (a job-level refusal too) */
    HEALTH_SIG_TRANSIENT, /* transport error, timeout or HTTP 5xx */
    HEALTH_SIG_AUTH,      /* HTTP 401/403: the key was refused */
    HEALTH_SIG_QUOTA,     /* out of quota */
};

/* A transition, for the caller's log line, event and metric. */
enum health_change {
    HEALTH_SAME,
    HEALTH_OPENED,   /* OK -> OPEN */
    HEALTH_CLOSED,   /* OPEN -> OK */
    HEALTH_LEFT,     /* -> OUT */
    HEALTH_RETURNED, /* OUT -> OK */
};

struct health_params {
    int failures;  /* transient failures in a row that open the breaker */
    long open_ms;  /* first pause of an open breaker */
    long probe_ms; /* probe period of an account out of rotation */
};

struct health {
    enum health_state state;
    unsigned failures; /* consecutive transient failures */
    unsigned trips;    /* consecutive failed probes of an open breaker */
    int64_t probe_at;  /* OPEN/OUT: when the next probe is due */
    int probing;       /* a probe is in flight */
    char reason[160];  /* why it is OPEN or OUT, secret-free */
};

/* A new account: OK. */
void health_init(struct health *h);

/*
 * Counts one answer to a regular request (submit, fetch, list). reason
 * (may be NULL) is kept as the why of a change. Returns the transition.
 */
enum health_change health_report(struct health *h,
                                 const struct health_params *p,
                                 enum health_signal sig, const char *reason,
                                 int64_t now);

/* 1 when the account takes submits. */
int health_can_submit(const struct health *h);

/* 1 when a probe should be sent now (OPEN or OUT, due, none in flight). */
int health_probe_due(const struct health *h, int64_t now);

/* A probe was sent. */
void health_probe_started(struct health *h);

/* The probe's answer: OK returns the account to rotation. */
enum health_change health_probe_done(struct health *h,
                                     const struct health_params *p,
                                     enum health_signal sig, const char *reason,
                                     int64_t now);

/* "ok", "breaker open" or "out of rotation". */
const char *health_state_name(enum health_state state);

#endif
