#include <stdio.h>
#include <string.h>

#include "config_cmd.h"
#include "enqueue.h"
#include "events.h"
#include "healthcheck.h"
#include "sim/sim.h"
#include "status.h"
#include "supervisor.h"
#include "worker.h"

/*
 * mjq's command line: only dispatch lives here. Each subcommand parses
 * its own flags and owns its exit codes (docs/operations.md lists them).
 */

struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"run", supervisor_main, "supervisor: runs and restarts the workers"},
    {"worker", worker_main, "one worker process (what `run` starts)"},
    {"enqueue", enqueue_main, "push a job onto a queue, optionally wait"},
    {"sim", sim_main, "MJ API simulator for demos, tests and benchmarks"},
    {"status", status_main,
     "queues, workers, results and accounts, from Redis"},
    {"events", events_main, "print the events stream, or follow it"},
    {"config", config_cmd_main, "validate and print the effective config"},
    {"health", healthcheck_main, "GET the health endpoint (container checks)"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mjq <command> [options]\n\n"
            "MidJourney job-queue worker service (version %s).\n\n"
            "commands:\n",
            MJQ_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`mjq <command> --help` describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 64; /* EX_USAGE */
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("mjq %s\n", MJQ_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    }
    fprintf(stderr, "mjq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 64;
}
