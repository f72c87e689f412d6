#ifndef MJQ_SIM_SERVER_H
#define MJQ_SIM_SERVER_H

#include <event2/event.h>

#include "sim_opts.h"

/*
 * The simulator's HTTP side: one evhttp on the caller's event_base,
 * routing, auth (the key picks the account; revoked and down accounts),
 * fault injection, delayed (slow) replies, /healthz. The MJ behaviour is
 * sim_api, the test endpoints under /sim/ are sim_admin.
 */

struct sim_server;

/*
 * New server on `base` (borrowed) with `opts` (borrowed; both must
 * outlive the server). Seeds the PRNG from opts. Returns NULL on
 * failure (logged).
 */
struct sim_server *sim_server_new(struct event_base *base,
                                  const struct sim_opts *opts);

/*
 * Binds and listens on opts->listen_host:listen_port. Returns 0 and the
 * bound port in *port, or a negative errno (logged).
 */
int sim_server_listen(struct sim_server *srv, int *port);

/*
 * Answers every delayed reply still waiting (503 for submits, the normal
 * answer otherwise), closes all connections and frees everything. Call it
 * after the loop has stopped, not from a callback. NULL is a no-op.
 */
void sim_server_free(struct sim_server *srv);

#endif
