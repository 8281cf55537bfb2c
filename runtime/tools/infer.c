/* infer: the runtime's command line. Dispatches to one function per verb. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct verb {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

static const struct verb verbs[] = {
	{ "inspect", cmd_inspect, "inspect FILE.gguf [--json]            metadata and tensor table" },
	{ "dequant", cmd_dequant, "dequant FILE.gguf --tensor NAME --out OUT.f32   raw float32 values" },
	{ "tokenize", cmd_tokenize, "tokenize -m MODEL.gguf [--special] (-p TEXT | --file F)" },
	{ "generate", cmd_generate, "generate -m MODEL.gguf -p PROMPT [--chat] [--n N] [--temp T] ..." },
	{ "bench", cmd_bench, "bench -m MODEL.gguf [--backend cpu|cuda] [--prompt 512] [--gen 128] [--json]" },
	{ "bench-dequant", cmd_bench_dequant, "bench-dequant [--json] [--type T] [--seconds S]   CPU dequant MB/s per type, one core" },
	{ "serve", cmd_serve, "serve -m MODEL.gguf [--backend cpu|cuda] [--host H] [--port N]" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: infer VERB [options]   (infer VERB --help for details)\n\nverbs:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(out, "  %s\n", verbs[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "error: unknown verb '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
