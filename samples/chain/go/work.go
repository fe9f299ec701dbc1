package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../rust/include
#cgo LDFLAGS: -lseam_mix
#include <stdint.h>
#include "chain.h"
#include "seam_mix.h"

// Crossing counters, incremented by Go with sync/atomic and read by Python
// with ctypes' in_dll after the work (a read costs no crossing).
uint64_t seam_chain_rust_calls;     // go -> rust (cgo-call of seam_mix_work)
uint64_t seam_chain_helper_calls;   // go -> c    (cgo-call of chain_invoke_cb)

// Go cannot call a C function pointer; this helper does it for Go.
__attribute__((noinline))
int64_t chain_invoke_cb(chain_cb cb, int64_t x) {
	int64_t r = cb(x);
	__asm__ volatile("" ::: "memory");   // keep the call from being a tail call
	return r;
}
*/
import "C"

import (
	"sync/atomic"
	"unsafe"
)

const (
	// Rust calls per ChainWork call.
	chainRustCalls = 20
	// Rounds per Rust call: about 25 us each on the dev VM.
	rustRounds = 600
	// Go work between two Rust calls: about 12 us on the dev VM.
	goStirPasses = 20
)

var (
	rustCalls   = (*uint64)(unsafe.Pointer(&C.seam_chain_rust_calls))
	helperCalls = (*uint64)(unsafe.Pointer(&C.seam_chain_helper_calls))
)

//go:noinline
func chainRun(seed int64, cb C.chain_cb) int64 {
	acc := uint64(seed)
	var buf [256]uint32
	for i := range buf {
		buf[i] = uint32(seed) + uint32(i)*2654435761
	}
	for i := 0; i < chainRustCalls; i++ {
		acc = chainStage(acc, uint64(i), &buf)
	}
	atomic.AddUint64(rustCalls, chainRustCalls)
	r := chainCallback(cb, int64(acc&0xffffff))
	atomic.AddUint64(helperCalls, 1)
	return int64(acc>>1) ^ r
}

//go:noinline
func chainStage(acc, i uint64, buf *[256]uint32) uint64 {
	acc += goStir(buf, uint32(acc))
	acc ^= callRust(acc+i, rustRounds)
	return acc
}

// goStir is the pure-Go work: a few passes over a small table.
//
//go:noinline
func goStir(buf *[256]uint32, k uint32) uint64 {
	var sum uint64
	for pass := 0; pass < goStirPasses; pass++ {
		x := k + uint32(pass)
		for j := range buf {
			x = x*1664525 + 1013904223 + buf[j]
			buf[j] = x ^ (x >> 13)
			sum += uint64(x >> 7)
		}
	}
	return sum
}

//go:noinline
func callRust(seed uint64, rounds uint32) uint64 {
	return uint64(C.seam_mix_work(C.uint64_t(seed), C.uint32_t(rounds)))
}

//go:noinline
func chainCallback(cb C.chain_cb, x int64) int64 {
	return int64(C.chain_invoke_cb(cb, C.int64_t(x)))
}
