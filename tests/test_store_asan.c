/* test_store_asan.c — test_store under AddressSanitizer + UBSan: the same
 * tests (error, cancel and shutdown paths included) against the sanitized
 * core, except the process-RSS test (the sanitizer's shadow memory and
 * quarantine are part of the RSS). */
#define STORE_TEST_NO_RSS 1
#include "test_store.c"
