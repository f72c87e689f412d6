#include "config_cmd.h"

#include <stdio.h>

#include "cli.h"
#include "config.h"

/*
 * `mjq config`: what a process started with the same file, environment
 * and flags would run with, or the one-line reason it would refuse to
 * start. Deployment checks validate a ConfigMap's mjq.conf with it.
 */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mjq config [--config FILE] [--set KEY=VALUE]... "
            "[--FLAG VALUE]...\n\n"
            "Loads the configuration as `mjq run` and `mjq worker` do "
            "(defaults, the\nfile, MJQ_* environment, flags), validates it "
            "and prints the effective\nsettings, one `key = value` a line "
            "(api.key as (set) or (unset), a\nRedis password as ***). "
            "Nothing is contacted; api.key_file is read.\n\n"
            "Exit codes: 0 valid, 64 usage, %d invalid (the reason on "
            "stderr).\n\n",
            MJQ_EXIT_CONFIG);
    config_usage(out);
}

int config_cmd_main(int argc, char **argv)
{
    struct config cfg;
    int rc = cli_parse("mjq config", argc, argv, NULL, 0, usage, &cfg);

    if (rc == 0)
        config_dump(&cfg);
    config_free(&cfg);
    return rc > 0 ? 0 : -rc;
}
