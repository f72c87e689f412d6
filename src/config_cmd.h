#ifndef MJQ_CONFIG_CMD_H
#define MJQ_CONFIG_CMD_H

/*
 * Entry point of `mjq config`: loads the configuration exactly as `mjq
 * run` and `mjq worker` do (argv[0] is "config"; --config FILE, --set,
 * setting flags, MJQ_* environment), validates it and prints the
 * effective settings with secrets masked. Returns the process exit code:
 * 0 valid, 64 usage, 78 invalid.
 */
int config_cmd_main(int argc, char **argv);

#endif
