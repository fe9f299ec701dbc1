// The C function of ffibench's go-c mechanism, compiled by cgo with
// CGO_CFLAGS (-g -O2) and the package's #cgo CFLAGS (-fno-omit-frame-pointer;
// the volatile local makes gcc keep the frame, so ffib_c_noop starts with
// push %rbp, like ffib_noop). Go reaches it through the cgo-generated wrapper
// _cgo_<hash>_Cfunc_ffib_c_noop (runtime.cgocall -> runtime.asmcgocall ->
// wrapper -> ffib_c_noop).
#include "ffibgo.h"

__attribute__((noinline))
int64_t ffib_c_noop(int64_t x) {
	volatile int64_t v = x;
	return v;
}
