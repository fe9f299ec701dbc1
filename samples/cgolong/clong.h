/* The C part of cgolong (clong.c), called from Go through cgo. */
#ifndef SEAM_CGOLONG_CLONG_H
#define SEAM_CGOLONG_CLONG_H
#include <stdint.h>

/* CLOCK_MONOTONIC times of one call: when it started and when it returned. */
typedef struct {
	int64_t start_ns;
	int64_t end_ns;
} clong_times;

/* Busy-spins (pure CPU) for ns nanoseconds of CLOCK_MONOTONIC time. */
int64_t cgolong_spin(int64_t ns, clong_times *t);

/* Sleeps ns nanoseconds (clock_nanosleep on CLOCK_MONOTONIC, absolute). */
int64_t cgolong_sleep(int64_t ns, clong_times *t);

#endif
