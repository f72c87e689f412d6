#include "health.h"

#include <stdio.h>
#include <string.h>

/* The pause of an open breaker doubles per failed probe up to this. */
#define MAX_DOUBLINGS 5

void health_init(struct health *h)
{
    memset(h, 0, sizeof(*h));
    h->state = HEALTH_OK;
}

static void set_reason(struct health *h, const char *reason)
{
    snprintf(h->reason, sizeof(h->reason), "%s", reason != NULL ? reason : "");
}

static long open_pause(const struct health_params *p, unsigned trips)
{
    unsigned n = trips < MAX_DOUBLINGS ? trips : MAX_DOUBLINGS;

    return p->open_ms << n;
}

/* -> OUT, probed every probe_ms. */
static enum health_change leave(struct health *h, const struct health_params *p,
                                const char *reason, int64_t now)
{
    enum health_change c = h->state == HEALTH_OUT ? HEALTH_SAME : HEALTH_LEFT;

    h->state = HEALTH_OUT;
    h->failures = 0;
    h->probe_at = now + p->probe_ms;
    set_reason(h, reason);
    return c;
}

enum health_change health_report(struct health *h,
                                 const struct health_params *p,
                                 enum health_signal sig, const char *reason,
                                 int64_t now)
{
    switch (sig) {
    case HEALTH_SIG_NONE:
        return HEALTH_SAME;
    case HEALTH_SIG_OK:
        /* Answers to requests that were already running do not close an
         * open breaker: only its probe does, so it cannot flap. */
        if (h->state == HEALTH_OK) {
            h->failures = 0;
            h->trips = 0;
        }
        return HEALTH_SAME;
    case HEALTH_SIG_TRANSIENT:
        if (h->state != HEALTH_OK)
            return HEALTH_SAME;
        if (++h->failures < (unsigned)p->failures)
            return HEALTH_SAME;
        h->state = HEALTH_OPEN;
        h->probe_at = now + open_pause(p, h->trips);
        set_reason(h, reason);
        return HEALTH_OPENED;
    case HEALTH_SIG_AUTH:
    case HEALTH_SIG_QUOTA:
        return leave(h, p, reason, now);
    }
    return HEALTH_SAME;
}

int health_can_submit(const struct health *h)
{
    return h->state == HEALTH_OK;
}

int health_probe_due(const struct health *h, int64_t now)
{
    return h->state != HEALTH_OK && !h->probing && now >= h->probe_at;
}

void health_probe_started(struct health *h)
{
    h->probing = 1;
}

enum health_change health_probe_done(struct health *h,
                                     const struct health_params *p,
                                     enum health_signal sig, const char *reason,
                                     int64_t now)
{
    enum health_state was = h->state;

    h->probing = 0;
    if (was == HEALTH_OK)
        return health_report(h, p, sig, reason, now);
    switch (sig) {
    case HEALTH_SIG_OK:
        /* Healthy again. An account out of quota comes back on trial:
         * its next refused submit sends it out again. */
        h->state = HEALTH_OK;
        h->failures = 0;
        set_reason(h, NULL);
        return was == HEALTH_OPEN ? HEALTH_CLOSED : HEALTH_RETURNED;
    case HEALTH_SIG_AUTH:
    case HEALTH_SIG_QUOTA:
        if (was == HEALTH_OUT) {
            h->probe_at = now + p->probe_ms;
            set_reason(h, reason);
            return HEALTH_SAME;
        }
        /* An open breaker whose probe hears "key refused". */
        return leave(h, p, reason, now);
    case HEALTH_SIG_TRANSIENT:
    case HEALTH_SIG_NONE:
        if (was == HEALTH_OPEN) {
            if (h->trips < MAX_DOUBLINGS)
                h->trips++;
            h->probe_at = now + open_pause(p, h->trips);
        } else {
            h->probe_at = now + p->probe_ms;
        }
        return HEALTH_SAME;
    }
    return HEALTH_SAME;
}

const char *health_state_name(enum health_state state)
{
    switch (state) {
    case HEALTH_OK:
        return "ok";
    case HEALTH_OPEN:
        return "breaker open";
    case HEALTH_OUT:
        return "out of rotation";
    }
    return "?";
}
