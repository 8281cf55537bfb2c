/* conform: placeholder until the harness lands; fails loudly. */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "error: conform is not implemented\n");
	return 2;
}
