/* One table of CUnit tests run as one suite: the main() of the table-driven
 * test programs in runtime/tests and harness/tests. Header-only so both test
 * folders can use it without linking anything extra. */
#ifndef INFER_CUNIT_TABLE_H
#define INFER_CUNIT_TABLE_H

#include <CUnit/Basic.h>
#include <stddef.h>

struct cu_case {
	const char *name;
	void (*fn)(void);
};

/* Runs the cases verbosely; returns the number of failed assertions and
 * tests, or -1 when CUnit cannot start. */
static inline int cu_run_table(const char *suite, const struct cu_case *cases, size_t n)
{
	CU_pSuite s;
	int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return -1;
	s = CU_add_suite(suite, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		CU_add_test(s, cases[i].name, cases[i].fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = (int)(CU_get_number_of_failures() + CU_get_number_of_tests_failed());
	CU_cleanup_registry();
	return failed;
}

#endif
