/* The C part of gomain (cwork.c), called from Go through cgo. */
#ifndef SEAM_GOMAIN_CWORK_H
#define SEAM_GOMAIN_CWORK_H
#include <stdint.h>

/* Calls the Rust cdylib `calls` times (seam_mix_work with `rounds` rounds),
 * then calls back into Go once (goCallback). Adds the number of Rust calls
 * made to *rust_calls. */
int64_t c_work(int64_t seed, int32_t calls, int32_t rounds, int64_t *rust_calls);

#endif
