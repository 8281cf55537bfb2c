/* The `infer` verbs, one file each (cmd_<verb>.c). Each returns the process
 * exit code: 0 ok, 1 runtime failure, 2 usage or malformed input. */
#ifndef INFER_COMMANDS_H
#define INFER_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_dequant(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_dequant(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
