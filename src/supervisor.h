#ifndef MJQ_SUPERVISOR_H
#define MJQ_SUPERVISOR_H

/*
 * Entry point of `mjq supervisor`: parses its own flags from argv (argv[0] is
 * "supervisor") and returns the process exit code.
 */
int supervisor_main(int argc, char **argv);

#endif
