/* input.h: wsgi.input, made from a request's body (body.h).
 *
 * A buffered body becomes a seekable Input over its bytes (or a file object over its spooled
 * file); a streamed body an Input that hands out what has arrived and the would-block sentinel
 * when nothing has (SPEC 5). Python-aware: called by whoever runs the app, with the GIL held.
 */
#ifndef AW_INPUT_H
#define AW_INPUT_H

#include "body.h"
#include "compat.h"
#include "module.h"

struct aw_conn;

extern PyType_Spec aw_input_spec;

PyObject *aw_input_new_memory(aw_state_t *st, char *data, size_t len);
int aw_input_attach(aw_state_t *st, PyObject *environ, aw_body_t *b, struct aw_conn *conn,
                    PyObject *sentinel, PyObject **input);
void aw_input_done(aw_state_t *st, PyObject *input, const aw_body_t *b);

#endif
