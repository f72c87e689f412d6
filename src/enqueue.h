#ifndef MJQ_ENQUEUE_H
#define MJQ_ENQUEUE_H

/*
 * Entry point of `mjq enqueue`: parses its own flags from argv (argv[0] is
 * "enqueue") and returns the process exit code.
 */
int enqueue_main(int argc, char **argv);

#endif
