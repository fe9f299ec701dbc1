/* C side of ffibench's Go library (libffibgo.so). */
#ifndef SEAM_FFIBGO_H
#define SEAM_FFIBGO_H
#include <stdint.h>

/* Returns x: the C function Go calls through cgo in FfibGoCallC
 * (go -> c, cgo-call). Defined in ffibc.c. */
int64_t ffib_c_noop(int64_t x);

#endif
