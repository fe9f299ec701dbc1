/* Declarations shared by the cgo preambles of the chain library. */
#ifndef SEAM_CHAIN_H
#define SEAM_CHAIN_H
#include <stdint.h>

/* The Python callback (a ctypes CFUNCTYPE(c_int64, c_int64)). */
typedef int64_t (*chain_cb)(int64_t);

#endif
