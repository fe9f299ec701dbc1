"""Writes the C source of ffibench's cffi API-mode module, _ffib_cffi.

    python3.X samples/ffibench/cffi_build.py OUT.c

samples/build.sh runs this with each Python (cffi must be installed in it:
python3.X -m pip install cffi) and compiles OUT.c with gcc against that
Python's headers, linking libffib.so (ffi.emit_c_code, so no setuptools is
needed). The generated wrapper of ffib_noop is _cffi_f_ffib_noop, a METH_O
function that releases the GIL around the call.
"""

import sys

import cffi

CDEF = "int64_t ffib_noop(int64_t x);"


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("_ffib_cffi", '#include "ffib.h"')
    ffi.emit_c_code(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
