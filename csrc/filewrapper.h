/* filewrapper.h: wsgi.file_wrapper (PEP 3333 "optional platform-specific file handling").
 *
 * Python-aware; does no socket I/O.
 */
#ifndef AW_FILEWRAPPER_H
#define AW_FILEWRAPPER_H

#include "compat.h"
#include "module.h"

extern PyType_Spec aw_filewrapper_spec;

int aw_filewrapper_sendfile_fd(PyObject *wrapper, aw_state_t *st, long long *offset,
                               long long *size);

#endif
