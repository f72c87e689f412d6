#ifndef MJQ_WORKER_H
#define MJQ_WORKER_H

/*
 * Entry point of `mjq worker`: parses its own flags from argv (argv[0] is
 * "worker") and returns the process exit code.
 */
int worker_main(int argc, char **argv);

#endif
