/* libffib.so: the empty C function that ffibench calls through ctypes and
 * cffi (ABI and API mode).
 *
 * Built by samples/build.sh with -g -O2 -fPIC -fno-omit-frame-pointer.
 * gcc 12 drops the frame pointer of a leaf that touches no stack (even with
 * -mno-omit-leaf-frame-pointer), which would leave `mov %rdi,%rax; ret`.
 * The volatile local gives the function a stack slot, so it gets the normal
 * prologue: its first instruction is `push %rbp`, then `mov %rsp,%rbp`
 * (a plain uprobe site, and a frame-pointer unwind that sees the caller).
 * The function is exported (default visibility); every caller is in another
 * DSO, so nothing can inline it. */
#include "ffib.h"

__attribute__((visibility("default"), noinline))
int64_t ffib_noop(int64_t x) {
	volatile int64_t v = x;
	return v;
}
