#ifndef MJQ_CLI_H
#define MJQ_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "config.h"

/*
 * What the short-lived Redis commands (`mjq status`, `mjq events`) share:
 * their own flags next to the settings every command takes (--config,
 * --set, --redis-url, --prefix, --queues...: parsed by worker_parse_args
 * and loaded by config_load), and a synchronous hiredis connection.
 *
 * Functions return 0 or a negative sysexits code (-EX_USAGE,
 * -EX_UNAVAILABLE, -MJQ_EXIT_CONFIG) after printing why on stderr,
 * prefixed with the command's name ("mjq status: ...").
 */

/* One flag of the command itself. */
struct cli_flag {
    const char *name;   /* long name without the dashes */
    const char **value; /* value flags: where the value goes (borrowed
                         * from argv); NULL for a boolean flag */
    int *set;           /* boolean flags: set to 1; NULL for value flags */
};

/*
 * Parses argv (argv[0] is the command's name): the command's own flags
 * into their targets, everything else as settings, then loads the
 * configuration into cfg (which the caller config_free()s in every case).
 * --help prints usage(stdout) and returns 1. Returns 0, 1, -EX_USAGE or
 * -MJQ_EXIT_CONFIG.
 */
int cli_parse(const char *prog, int argc, char **argv,
              const struct cli_flag *flags, size_t nflags,
              void (*usage)(FILE *), struct config *cfg);

/*
 * Connects to cfg's Redis with a socket timeout of timeout_s seconds for
 * the connect and every command, authenticates (the password is sent as an
 * argument, never printed) and selects the database. Returns a new
 * context (redisFree it), or NULL after printing why.
 */
redisContext *cli_redis_open(const char *prog, const struct config *cfg,
                             int timeout_s);

/*
 * Checks a reply from redisCommand: returns it (the caller frees it), or
 * NULL after printing why (connection error or error reply, then freed).
 * what names the command in the message.
 */
redisReply *cli_checked(const char *prog, redisContext *c, void *reply,
                        const char *what);

/*
 * Writes "host:port/db" or the unix socket path of cfg's Redis into buf,
 * without credentials, for messages and headers.
 */
void cli_redis_where(const struct config *cfg, char *buf, size_t len);

/*
 * A stream entry's field/value array (the second element of an XRANGE or
 * XREAD entry) as a new JSON object of strings; a value that is not UTF-8
 * shows as "(not UTF-8)". Returns a new reference.
 */
json_t *cli_entry_object(const redisReply *kv);

/* Formats unix epoch ms as "2026-11-29T18:00:05.123Z" (UTC) into buf. */
void cli_format_ms(int64_t ms, char *buf, size_t len);

#endif
