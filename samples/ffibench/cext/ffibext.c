/* _ffib_ext: a hand-written CPython extension module for ffibench.
 *
 * One METH_O function, noop(x), that returns x (a new reference to the same
 * object): the smallest possible Python -> C extension crossing. The C
 * function is ffibext_noop, exported (not static) so that it is in .dynsym
 * as well as .symtab. Built per Python version by samples/build.sh with
 * gcc -g -O2 -fPIC -fno-omit-frame-pointer against that Python's headers.
 * ffibext_noop is a leaf with no stack use, so gcc gives it no prologue:
 * it starts with the inlined Py_INCREF. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

__attribute__((visibility("default"), noinline))
PyObject *ffibext_noop(PyObject *self, PyObject *arg) {
	(void)self;
	Py_INCREF(arg);
	return arg;
}

static PyMethodDef ffibext_methods[] = {
	{"noop", ffibext_noop, METH_O, "noop(x) -> x"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef ffibext_module = {
	PyModuleDef_HEAD_INIT,
	"_ffib_ext",
	"ffibench: a METH_O noop in a hand-written C extension.",
	-1,
	ffibext_methods,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ffib_ext(void) {
	return PyModule_Create(&ffibext_module);
}
