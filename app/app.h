/* app.h — the strata subcommands. Each takes the arguments after its name
 * (argv[0] is the subcommand name) and returns the process exit status. */
#ifndef ST_APP_H
#define ST_APP_H

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_genmodel(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_history(int argc, char **argv);

#endif
