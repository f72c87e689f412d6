#ifndef MJQ_WORKER_H
#define MJQ_WORKER_H

#include <stddef.h>
#include <stdio.h>

/*
 * Entry point of `mjq worker`: parses its own flags from argv (argv[0] is
 * "worker") and returns the process exit code.
 */
int worker_main(int argc, char **argv);

/*
 * Applies `how` (SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK) with the signals that
 * stop a worker: SIGTERM, SIGINT, SIGHUP. A worker has them blocked from
 * its start (mjq run execs it with that mask, which survives exec) until
 * its loop handles them, so one sent while it starts waits and then
 * drains it instead of killing it. Async-signal-safe.
 */
void worker_stop_signals(int how);

/*
 * Command-line parsing shared by `mjq worker` and `mjq run`: --config
 * FILE, --set KEY=VALUE, and --FLAG VALUE for every setting that has a
 * flag (config_flag_key). Fills *config_path (borrowed from argv, or
 * NULL) and *flags, an array of new "key=value" strings (free with
 * worker_free_args). Returns 0, 1 when --help was printed with help(),
 * or -1 after printing a usage error.
 */
int worker_parse_args(int argc, char **argv, void (*help)(FILE *),
                      const char **config_path, char ***flags, size_t *nflags);

/* Frees what worker_parse_args returned. */
void worker_free_args(char **flags, size_t nflags);

#endif
