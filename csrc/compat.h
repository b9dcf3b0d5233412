/* compat.h: Python.h for the files that use the C API, with what Python 3.9 lacks.
 *
 * Included (first) by every header of a Python-aware file; never by loop.h, parser.h, pool.h
 * or trust.h, which stay free of Python.
 */
#ifndef AW_COMPAT_H
#define AW_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *aw_newref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
#define Py_NewRef(o) aw_newref((PyObject *)(o))
#define Py_IsNone(o) ((o) == Py_None)
#define Py_TPFLAGS_IMMUTABLETYPE 0
static inline int aw_module_add_ref(PyObject *m, const char *name, PyObject *o)
{
    Py_INCREF(o);
    if (PyModule_AddObject(m, name, o) < 0) {
        Py_DECREF(o);
        return -1;
    }
    return 0;
}
#define PyModule_AddObjectRef aw_module_add_ref
#endif

#define AW_VERSION "0.1.0"

#endif
