/* infer tokenize: not implemented yet (placeholder so the CLI links; fails loudly). */
#include <stdio.h>

#include "commands.h"

int cmd_tokenize(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "error: infer tokenize is not implemented\n");
	return 2;
}
