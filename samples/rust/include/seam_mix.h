/* C interface of the Rust cdylib libseam_mix.so (samples/rust). */
#ifndef SEAM_MIX_H
#define SEAM_MIX_H
#include <stdint.h>

/* Runs `rounds` mixing rounds seeded by `seed` and returns a digest.
 * Cost is linear in `rounds` (about 25 ns per round on the dev VM). */
uint64_t seam_mix_work(uint64_t seed, uint32_t rounds);

/* Returns x (ffibench's ctypes-rust crossing target). */
int64_t seam_noop(int64_t x);

#endif
