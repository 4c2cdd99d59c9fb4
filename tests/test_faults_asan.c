/* test_faults_asan.c — test_faults under AddressSanitizer + UBSan: the same
 * memory, context and file-fault tests (truncation with reads in flight on
 * the prefetch threads, errors, session teardown) against the sanitized core,
 * except the ones that run the (uninstrumented) strata binary. */
#define FAULTS_TEST_NO_CLI 1
#include "test_faults.c"
