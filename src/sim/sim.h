#ifndef MJQ_SIM_H
#define MJQ_SIM_H

/*
 * Entry point of `mjq sim`, the MJ API simulator: parses its own flags
 * from argv (argv[0] is "sim") and returns the process exit code.
 */
int sim_main(int argc, char **argv);

#endif
