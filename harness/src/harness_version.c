/* Version of the harness and its report schema. */
const char *harness_version(void)
{
	return "0.1.0";
}
