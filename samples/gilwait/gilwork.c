/* libgilwait.so: the C function the gilwait sample calls through ctypes.CDLL
 * (which releases the GIL around the call).
 *
 * gilwait_work spins (pure CPU, no syscalls but the vDSO clock) for work_ns
 * nanoseconds of CLOCK_MONOTONIC time, then stores the time it returns at
 * (CLOCK_MONOTONIC ns) into *t_end. Python reads time.monotonic_ns() right
 * after the call returns; the difference is the time the calling thread
 * waited to take the GIL back (plus ctypes' small return path).
 *
 * Built by samples/build.sh with -g -O2 -fPIC -fno-omit-frame-pointer. */
#include <stdint.h>
#include <time.h>

static inline int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A little arithmetic between two clock reads. */
__attribute__((noinline))
static uint64_t gilwait_stir(uint64_t x) {
	for (int i = 0; i < 64; i++) {
		x ^= x >> 33;
		x *= 0xff51afd7ed558ccdULL;
	}
	return x;
}

__attribute__((visibility("default"), noinline))
int64_t gilwait_work(int64_t work_ns, int64_t *t_end) {
	int64_t deadline = mono_ns() + work_ns;
	uint64_t x = (uint64_t)work_ns;
	int64_t now;
	do {
		x = gilwait_stir(x);
		now = mono_ns();
	} while (now < deadline);
	*t_end = mono_ns();
	return (int64_t)(x & 0x7fffffff);
}
