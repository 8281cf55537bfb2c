/* infer inspect: not implemented yet (placeholder so the CLI links; fails loudly). */
#include <stdio.h>

#include "commands.h"

int cmd_inspect(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "error: infer inspect is not implemented\n");
	return 2;
}
