// The C part of cgolong: compiled by cgo with CGO_CFLAGS (-g -O2).
//
// Each function is one long cgo call (go -> c, cgo-call): about --call-ms
// milliseconds of busy CPU (cgolong_spin) or of sleep (cgolong_sleep). The
// start and return times (CLOCK_MONOTONIC, the clock perf uses) are written
// into *t by the C code itself, so timing costs no extra crossing.
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include "clong.h"

static inline int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline))
static uint64_t clong_stir(uint64_t x) {
	for (int i = 0; i < 256; i++) {
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ULL;
	}
	return x;
}

int64_t cgolong_spin(int64_t ns, clong_times *t) {
	int64_t start = mono_ns(), now;
	uint64_t x = (uint64_t)start;
	do {
		x = clong_stir(x);
		now = mono_ns();
	} while (now - start < ns);
	t->start_ns = start;
	t->end_ns = mono_ns();
	return (int64_t)(x & 0x7fffffff);
}

int64_t cgolong_sleep(int64_t ns, clong_times *t) {
	int64_t start = mono_ns();
	int64_t until = start + ns;
	struct timespec ts = {until / 1000000000, until % 1000000000};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
	}
	t->start_ns = start;
	t->end_ns = mono_ns();
	return 0;
}
