#ifndef MJQ_SIM_TASK_H
#define MJQ_SIM_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Simulated MJ tasks: the task record, the table that owns them (O(1)
 * lookup by id, bounded size) and the timeline that turns a task plus
 * "now" into its observable status. Nothing here is stored per status
 * change: status, progress and times are computed at fetch time from the
 * submit timestamp, so idle tasks cost no timers and no CPU.
 *
 * struct sim_task is visible (not opaque) because the reply and content
 * modules of the simulator read most of its fields; nothing outside
 * src/sim/ includes this header.
 */

enum sim_action {
    SIM_ACTION_IMAGINE,
    SIM_ACTION_BLEND,
    SIM_ACTION_DESCRIBE,
    SIM_ACTION_SHORTEN,
    SIM_ACTION_UPSCALE,
    SIM_ACTION_VARIATION,
    SIM_ACTION_REROLL,
    SIM_ACTION_ZOOM,
    SIM_ACTION_INPAINT,
};

enum sim_status {
    SIM_STATUS_NOT_START,
    SIM_STATUS_SUBMITTED,
    SIM_STATUS_IN_PROGRESS,
    SIM_STATUS_SUCCESS,
    SIM_STATUS_FAILURE,
    SIM_STATUS_MODAL,
    SIM_STATUS_CANCEL,
};

/* What the prompt words decided at acceptance time. */
enum sim_outcome {
    SIM_OUTCOME_OK,
    SIM_OUTCOME_FAIL,    /* "fail": FAILURE at the end, Invalid parameter */
    SIM_OUTCOME_BANNED,  /* "banned": FAILURE when it would start */
    SIM_OUTCOME_FOREVER, /* "forever": IN_PROGRESS forever */
    SIM_OUTCOME_VANISH,  /* "vanish": accepted, never stored */
};

/* Why a FAILURE/CANCEL snapshot failed. */
enum sim_fail {
    SIM_FAIL_NONE,
    SIM_FAIL_INVALID, /* [Invalid parameter] Invalid value */
    SIM_FAIL_BANNED,  /* 可能包含敏感词 */
    SIM_FAIL_CANCEL,  /* 取消任务 */
};

struct sim_task {
    uint64_t id;            /* 16-digit numeric id */
    uint64_t parent_id;     /* action/modal parent, 0 if none */
    int64_t submit_ms;      /* wall ms; reset when a MODAL task is run */
    int64_t cancel_ms;      /* wall ms of the cancel, 0 if none */
    char *prompt;           /* owned, never NULL ("" for blend...) */
    char *state;            /* owned copy of the submit `state`, or NULL */
    uint8_t action;         /* enum sim_action */
    uint8_t outcome;        /* enum sim_outcome */
    uint8_t index;          /* U/V index, zoom 50/75, PicReader n; or 0 */
    bool modal;             /* waiting for /mj/submit/modal */
    uint8_t account;        /* owner: index in sim_accounts */
    uint8_t mode;           /* enum sim_mode of the submit that runs it */
    uint32_t mark;          /* scratch for list-by-condition dedup */
    uint32_t flight_pos;    /* 1 + slot in the owner's in-flight heap, or 0 */
    int64_t last_read_ms;   /* wall ms of the last fetch/list read, 0 never */
    struct sim_task *hnext; /* hash bucket chain */
    struct sim_task *fnext; /* insertion order, oldest first */
};

/* Timing knobs shared by every task (from the options). */
struct sim_timing {
    int64_t duration_ms; /* submit -> terminal */
    int64_t queue_ms;    /* NOT_START/SUBMITTED part of it (clamped) */
    int steps;           /* progress steps while IN_PROGRESS, >= 1 */
};

/* The observable state of a task at one instant. */
struct sim_snap {
    enum sim_status status;
    enum sim_fail fail; /* for FAILURE and CANCEL */
    int progress;       /* percent 0..100 */
    int64_t start_ms;   /* 0 = not started (null) */
    int64_t finish_ms;  /* 0 = not finished (null) */
};

struct sim_table;

/* Action name as in the task JSON ("IMAGINE", "UPSCALE"...). */
const char *sim_action_name(enum sim_action a);
/* Status name as in the task JSON ("NOT_START"...). */
const char *sim_status_name(enum sim_status s);

/*
 * Classifies a prompt by its magic words (case-insensitive substrings):
 * vanish, banned, forever, fail, checked in that order. NULL is OK.
 */
enum sim_outcome sim_outcome_of(const char *prompt);

/*
 * New task with copies of prompt (NULL = "") and state (NULL or "" = no
 * state). Returns a new task the caller owns until sim_table_add().
 */
struct sim_task *sim_task_new(uint64_t id, enum sim_action action,
                              const char *prompt, const char *state);
/* Frees a task that is not in a table. NULL is a no-op. */
void sim_task_free(struct sim_task *t);
/* Replaces the prompt with a copy of `prompt`. */
void sim_task_set_prompt(struct sim_task *t, const char *prompt);

/* Computes what a fetch at wall time `now_ms` shows. Pure. */
void sim_task_snap(const struct sim_task *t, const struct sim_timing *tm,
                   int64_t now_ms, struct sim_snap *out);

/*
 * Wall ms at which the task stops being unfinished (NOT_START, SUBMITTED
 * or IN_PROGRESS) by itself, as sim_task_snap() sees it: INT64_MAX for
 * one that never ends ("forever"), 0 for one that is not running at all
 * (MODAL, vanished). A cancel ends it earlier. Pure.
 */
int64_t sim_task_busy_until(const struct sim_task *t,
                            const struct sim_timing *tm);

/* True for SUCCESS, FAILURE and CANCEL. */
bool sim_status_terminal(enum sim_status s);

/* Formats an id as its decimal string; buf holds at least 24 bytes. */
void sim_id_format(uint64_t id, char *buf, size_t size);
/*
 * Parses a canonical id (1-19 digits, no sign, no leading zero) from the
 * len bytes at s. Returns 0 or -1.
 */
int sim_id_parse(const char *s, size_t len, uint64_t *out);

/* New empty table keeping at most max_tasks tasks. Never NULL. */
struct sim_table *sim_table_new(size_t max_tasks);

/*
 * Called with each task the table is about to free (eviction, clear), so
 * that whoever else points to it can let go. Runs inside sim_table_add()
 * and sim_table_clear(); it must not call back into the table.
 */
typedef void sim_table_drop_fn(struct sim_task *t, void *ctx);

/* Sets the drop hook (NULL: none, the default). ctx is borrowed. */
void sim_table_set_drop_hook(struct sim_table *tab, sim_table_drop_fn *fn,
                             void *ctx);
/* Frees the table and every task in it. NULL is a no-op. */
void sim_table_free(struct sim_table *tab);

/*
 * Next unique task id for a submit at wall time now_ms: epoch ms times
 * 1000 plus a counter, strictly increasing even within one millisecond.
 */
uint64_t sim_table_next_id(struct sim_table *tab, int64_t now_ms);

/*
 * Inserts t (steals it). When the table is over its bound, the oldest
 * tasks are evicted and freed: pointers to tasks other than t obtained
 * before this call may be invalid afterwards.
 */
void sim_table_add(struct sim_table *tab, struct sim_task *t);
/* Borrowed pointer to the task with this id, or NULL. */
struct sim_task *sim_table_find(const struct sim_table *tab, uint64_t id);
/* Number of tasks held. */
size_t sim_table_count(const struct sim_table *tab);
/* Frees every task; returns how many were dropped. */
size_t sim_table_clear(struct sim_table *tab);

#endif
