// The C part of gomain: compiled by cgo with CGO_CFLAGS (-g -O2).
//
//   go --cgo-call--> c_work --c-abi--> seam_mix_work (Rust)
//                          --cgo-export--> goCallback (Go)
#include <stdint.h>
#include "cwork.h"
#include "seam_mix.h"
#include "_cgo_export.h"

// A non-inlined C frame between c_work and Rust, with a little C work.
__attribute__((noinline))
static uint64_t c_mix_step(uint64_t seed, uint32_t rounds) {
	uint64_t h = seed;
	for (int i = 0; i < 2048; i++) {
		h ^= h >> 33;
		h *= 0xff51afd7ed558ccdULL;
	}
	uint64_t r = seam_mix_work(h, rounds);
	__asm__ volatile("" ::: "memory");  // no tail call
	return r ^ seed;
}

int64_t c_work(int64_t seed, int32_t calls, int32_t rounds, int64_t *rust_calls) {
	uint64_t acc = (uint64_t)seed;
	for (int32_t i = 0; i < calls; i++) {
		acc += c_mix_step(acc + (uint64_t)i, (uint32_t)rounds);
		(*rust_calls)++;
	}
	acc ^= (uint64_t)goCallback((int64_t)(acc & 0xffffff));
	return (int64_t)acc;
}
