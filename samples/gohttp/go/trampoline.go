package main

/*
#include "gohttp.h"

// The C trampoline: Go cannot call a C function pointer, so every request
// goes go -> c (cgo-call of seam_http_call) -> python (the function pointer).
__attribute__((noinline))
int seam_http_call(seam_http_handler fn, int64_t req_id, const char *path, size_t path_len,
                   const char *body, size_t body_len) {
	int rc = fn(req_id, path, path_len, body, body_len);
	__asm__ volatile("" ::: "memory");   // keep the call from being a tail call
	return rc;
}
*/
import "C"

import (
	"sync/atomic"
	"unsafe"
)

// callHandler crosses into C (and from there into Python) for one request.
// path and body are Go memory without Go pointers: C only reads them during
// the call, which the cgo pointer rules allow.
//
//go:noinline
func callHandler(fn C.seam_http_handler, id int64, path, body []byte) int {
	var pp, bp *C.char
	if len(path) > 0 {
		pp = (*C.char)(unsafe.Pointer(&path[0]))
	}
	if len(body) > 0 {
		bp = (*C.char)(unsafe.Pointer(&body[0]))
	}
	rc := C.seam_http_call(fn, C.int64_t(id), pp, C.size_t(len(path)), bp, C.size_t(len(body)))
	atomic.AddInt64(&stats.trampolineCalls, 1)
	return int(rc)
}
