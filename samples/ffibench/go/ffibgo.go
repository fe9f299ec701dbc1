// Package main is the Go half of the ffibench sample, built with
// -buildmode=c-shared into libffibgo.so and loaded by ffibench.py through
// ctypes.CDLL.
//
//	FfibGoNoop(x) -> x          python -> go, ctypes (mechanism ctypes-go)
//	FfibGoCallC(n, out)         loops n times over C.ffib_c_noop
//	                            (go -> c, cgo-call: mechanism go-c)
//	FfibGoBaseline(n, out)      the same loop over a //go:noinline Go function
//
// FfibGoCallC and FfibGoBaseline write the loop's duration into *out (ns,
// from time.Now/time.Since, which use Go's monotonic clock reading). They
// make no other cgo call: the absolute CLOCK_MONOTONIC stamps of the loops
// are taken by Python (time.monotonic_ns) around the ctypes call, so the
// only go -> c crossings are the n calls of ffib_c_noop.
package main

/*
#cgo CFLAGS: -fno-omit-frame-pointer
#include <stdint.h>
#include "ffibgo.h"
*/
import "C"

import "time"

// FfibGoNoop returns x.
//
//export FfibGoNoop
func FfibGoNoop(x C.int64_t) C.int64_t {
	return x
}

// FfibGoCallC calls C.ffib_c_noop n times and stores the loop's duration in
// ns into *loopNs. It returns a digest of the results.
//
//export FfibGoCallC
func FfibGoCallC(n C.int64_t, loopNs *C.int64_t) C.int64_t {
	d, acc := callCLoop(int64(n))
	*loopNs = C.int64_t(d)
	return C.int64_t(acc)
}

// FfibGoBaseline runs the same loop as FfibGoCallC over goNoop (no
// crossing) and stores its duration in ns into *loopNs.
//
//export FfibGoBaseline
func FfibGoBaseline(n C.int64_t, loopNs *C.int64_t) C.int64_t {
	d, acc := goLoop(int64(n))
	*loopNs = C.int64_t(d)
	return C.int64_t(acc)
}

//go:noinline
func callCLoop(n int64) (int64, int64) {
	var acc int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		acc += int64(C.ffib_c_noop(C.int64_t(i)))
	}
	return int64(time.Since(t0)), acc
}

//go:noinline
func goLoop(n int64) (int64, int64) {
	var acc int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		acc += goNoop(i)
	}
	return int64(time.Since(t0)), acc
}

//go:noinline
func goNoop(x int64) int64 {
	return x
}

func main() {}
