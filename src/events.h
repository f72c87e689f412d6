#ifndef MJQ_EVENTS_H
#define MJQ_EVENTS_H

/*
 * Entry point of `mjq events`: parses its own flags from argv (argv[0] is
 * "events"), prints events of the <prefix>events stream, one a line, and
 * with --follow keeps printing new ones until SIGINT or SIGTERM. Returns
 * the process exit code (0, 64 usage, 69 Redis unreachable or failing,
 * 78 bad configuration).
 */
int events_main(int argc, char **argv);

#endif
