#ifndef MJQ_STATUS_H
#define MJQ_STATUS_H

/*
 * Entry point of `mjq status`: parses its own flags from argv (argv[0] is
 * "status"), reads the deployment's state from Redis, prints it and
 * returns the process exit code (0, 64 usage, 69 Redis unreachable or
 * failing, 78 bad configuration).
 */
int status_main(int argc, char **argv);

#endif
