/* infer dequant: not implemented yet (placeholder so the CLI links; fails loudly). */
#include <stdio.h>

#include "commands.h"

int cmd_dequant(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "error: infer dequant is not implemented\n");
	return 2;
}
