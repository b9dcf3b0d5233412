/* options.c: the Server's numeric and boolean options, in one table.
 *
 * Owns: the table (name, kind, default, range) that Server.__init__ parses its keyword
 * arguments with, and that the module exports as _core.OPTIONS so the Python layer (Config)
 * can be checked against it. Must not keep state: the parsed values live in the caller's
 * aw_options_t.
 */
#include "options.h"

#include <math.h>
#include <stdio.h>
#include <stddef.h>

typedef enum {
    AW_OPT_SECONDS, /* a float >= 0, stored in milliseconds */
    AW_OPT_SIZE,    /* a whole number within [min, max] */
    AW_OPT_FLAG,    /* a bool */
} aw_opt_kind_t;

typedef struct {
    const char *name;
    aw_opt_kind_t kind;
    double dflt, min, max;
    size_t offset; /* of the long long (SIZE, FLAG) or the long long ms (SECONDS) */
} aw_opt_spec_t;

#define AW_OPT(field, kind_, dflt_, min_, max_)                                                 \
    {.name = #field, .kind = (kind_), .dflt = (dflt_), .min = (min_), .max = (max_),            \
     .offset = offsetof(aw_options_t, field)}

/* SPEC 2's defaults. A size's maximum is what the core can represent. */
static const aw_opt_spec_t option_table[] = {
    AW_OPT(keepalive, AW_OPT_SECONDS, 5.0, 0, 86400.0 * 365),
    AW_OPT(header_timeout, AW_OPT_SECONDS, 10.0, 0, 86400.0 * 365),
    AW_OPT(max_header_size, AW_OPT_SIZE, 65536, 1024, 1 << 24),
    AW_OPT(max_body_size, AW_OPT_SIZE, 1073741824.0, 0, 9007199254740992.0),
    AW_OPT(spool_threshold, AW_OPT_SIZE, 1048576, 0, 9007199254740992.0),
    AW_OPT(max_requests, AW_OPT_SIZE, 0, 0, 9007199254740992.0),
    AW_OPT(threads, AW_OPT_SIZE, 1, 1, 1024),
    AW_OPT(max_queue, AW_OPT_SIZE, 128, 0, 1 << 20),
    AW_OPT(stream_input, AW_OPT_FLAG, 0, 0, 1),
    AW_OPT(multiprocess, AW_OPT_FLAG, 0, 0, 1),
    AW_OPT(static_max_age, AW_OPT_SIZE, 60, 0, 31536000),
};

#define N_OPTIONS (sizeof(option_table) / sizeof(option_table[0]))

static long long *slot(aw_options_t *o, const aw_opt_spec_t *spec)
{
    return (long long *)((char *)o + spec->offset);
}

static void set_default(aw_options_t *o, const aw_opt_spec_t *spec)
{
    double v = spec->kind == AW_OPT_SECONDS ? spec->dflt * 1000 : spec->dflt;
    *slot(o, spec) = (long long)v;
}

static int set_seconds(aw_options_t *o, const aw_opt_spec_t *spec, PyObject *value)
{
    double d = PyFloat_AsDouble(value);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(d) || d < spec->min || d > spec->max) {
        char msg[160]; /* PyErr_Format has no %g */
        snprintf(msg, sizeof(msg), "%s must be a number of seconds from %.15g to %.15g", spec->name,
                 spec->min, spec->max);
        PyErr_SetString(PyExc_ValueError, msg);
        return -1;
    }
    *slot(o, spec) = (long long)(d * 1000);
    return 0;
}

/* Whole numbers are compared as whole numbers: a double would round 2**53 + 1 down. */
static int set_size(aw_options_t *o, const aw_opt_spec_t *spec, PyObject *value)
{
    if (PyBool_Check(value) || !PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", spec->name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    long long lo = (long long)spec->min, hi = (long long)spec->max;
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (overflow || n < lo || n > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be from %lld to %lld", spec->name, lo, hi);
        return -1;
    }
    *slot(o, spec) = n;
    return 0;
}

static int set_value(aw_options_t *o, const aw_opt_spec_t *spec, PyObject *value)
{
    if (spec->kind == AW_OPT_SECONDS)
        return set_seconds(o, spec, value);
    if (spec->kind == AW_OPT_SIZE)
        return set_size(o, spec, value);
    int t = PyObject_IsTrue(value);
    if (t < 0)
        return -1;
    *slot(o, spec) = t;
    return 0;
}

/* Fill o from the keyword arguments in kwds that the table names (defaults for the others),
 * removing them from kwds, so that what is left is the caller's. Returns 0, or -1 with an
 * exception set. */
int aw_options_parse(aw_options_t *o, PyObject *kwds)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const aw_opt_spec_t *spec = &option_table[i];
        set_default(o, spec);
        if (!kwds)
            continue;
        PyObject *value = PyDict_GetItemString(kwds, spec->name); // borrowed
        if (!value)
            continue;
        if (set_value(o, spec, value) < 0 || PyDict_DelItemString(kwds, spec->name) < 0)
            return -1;
    }
    return 0;
}

/* _core.OPTIONS: {name: (default, minimum, maximum)}, seconds as floats, sizes as ints,
 * flags as bools. */
PyObject *aw_options_export(void)
{
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < N_OPTIONS; i++) {
        const aw_opt_spec_t *spec = &option_table[i];
        PyObject *t;
        if (spec->kind == AW_OPT_SECONDS)
            t = Py_BuildValue("(ddd)", spec->dflt, spec->min, spec->max);
        else if (spec->kind == AW_OPT_SIZE)
            t = Py_BuildValue("(LLL)", (long long)spec->dflt, (long long)spec->min,
                              (long long)spec->max);
        else
            t = Py_BuildValue("(NNN)", PyBool_FromLong((long)spec->dflt),
                              PyBool_FromLong((long)spec->min), PyBool_FromLong((long)spec->max));
        if (!t || PyDict_SetItemString(d, spec->name, t) < 0)
            Py_CLEAR(d);
        Py_XDECREF(t);
    }
    return d;
}
