/* C interface of libffib.so (samples/ffibench/c/ffib.c). */
#ifndef SEAM_FFIB_H
#define SEAM_FFIB_H
#include <stdint.h>

/* Returns x. The crossing target of ctypes-c, cffi-abi and cffi-api. */
int64_t ffib_noop(int64_t x);

#endif
