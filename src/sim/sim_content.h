#ifndef MJQ_SIM_CONTENT_H
#define MJQ_SIM_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_task.h"

/*
 * What Midjourney "produces" for a simulated task: the message hash, the
 * buttons of a finished task, what each button does, the describe and
 * shorten texts. Everything is derived from the task id and prompt on
 * the fly, so nothing here is stored per task.
 */

#define SIM_HASH_LEN      36 /* 8-4-4-4-12 hex, like a Discord job UUID */
#define SIM_MAX_BUTTONS   10
#define SIM_CUSTOM_ID_MAX 96

struct sim_button {
    char custom_id[SIM_CUSTOM_ID_MAX]; /* "MJ::JOB::upsample::1::<hash>" */
    const char *emoji;                 /* static; "" when none */
    const char *label;                 /* static; "" when none */
    int style;                         /* Discord button style (2) */
};

/* What pressing a button submits. */
enum sim_button_kind {
    SIM_BUTTON_JOB,             /* U/V/reroll/vary/zoom out: runs now */
    SIM_BUTTON_MODAL,           /* CustomZoom, Inpaint: code 21 + MODAL */
    SIM_BUTTON_PIC_READER,      /* describe -> imagine prompt n (modal) */
    SIM_BUTTON_PROMPT_ANALYZER, /* shorten -> imagine prompt n (modal) */
};

struct sim_button_action {
    enum sim_button_kind kind;
    enum sim_action action; /* the new task's action */
    int index;              /* U/V n, zoom 50/75, prompt n; or 0 */
};

/* The message hash of a task: a UUID-like string derived from its id. */
void sim_content_hash(uint64_t id, char out[SIM_HASH_LEN + 1]);

/*
 * Buttons a SUCCESS task shows, written to out[SIM_MAX_BUTTONS]. Returns
 * how many (0 for tasks without buttons).
 */
size_t sim_content_buttons(const struct sim_task *t, struct sim_button *out);

/*
 * Looks custom_id up among the buttons of the (SUCCESS) task t. Returns
 * 0 and fills *out, or -1 when t has no such button.
 */
int sim_content_action_of(const struct sim_task *t, const char *custom_id,
                          struct sim_button_action *out);

/*
 * Prompt of the task a button creates: the parent's prompt, or the n-th
 * describe/shorten suggestion. Returns a new string.
 */
char *sim_content_child_prompt(const struct sim_task *parent,
                               const struct sim_button_action *a);

/*
 * properties.finalPrompt of a finished task: four numbered prompts for
 * DESCRIBE, the markdown analysis for SHORTEN, else the prompt itself.
 * Returns a new string.
 */
char *sim_content_final_prompt(const struct sim_task *t);

/*
 * Image URL for a task: the grid or upscale on SUCCESS, a progress
 * preview while IN_PROGRESS past 0% (as NZK's progress handler does). Writes a
 * NUL-terminated string to out and returns its length; returns 0 (out = "")
 * when the task has no image in that state.
 */
size_t sim_content_image_url(const struct sim_task *t,
                             const struct sim_snap *snap, char *out,
                             size_t size);

#endif
