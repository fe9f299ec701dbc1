// Package main is the Go half of the chain sample, built with
// -buildmode=c-shared into libseamchain.so and loaded by chain.py through
// ctypes.CDLL.
//
// Call pattern of one ChainWork call (every call is the same):
//
//	python --ctypes--> ChainWork (Go export)
//	  main.chainRun -> main.chainStage  (x chainRustCalls)
//	      main.goStir                                 pure Go work
//	      main.callRust --cgo--> seam_mix_work        Rust cdylib
//	  main.chainCallback --cgo--> chain_invoke_cb     C helper (work.go preamble)
//	      --function pointer--> Python callback
package main

/*
#include "chain.h"
*/
import "C"

// ChainWork is the only function Python calls. It returns a digest of the
// work so that none of it is dead code.
//
//export ChainWork
func ChainWork(seed C.int64_t, cb C.chain_cb) C.int64_t {
	return C.int64_t(chainRun(int64(seed), cb))
}

func main() {}
