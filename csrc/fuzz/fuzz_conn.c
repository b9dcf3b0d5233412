/* fuzz_conn.c: libFuzzer target for the whole request path of one connection.
 *
 * Owns: an embedded CPython with the core linked in (registered as the built-in module
 * "_aw_fuzz_core"), two servers (buffered and streaming input) whose apps answer in every way
 * the core supports, and one driver that feeds the fuzzer's bytes through a connection:
 * read(), llhttp, the framing checks, the environ, wsgi.input, the app call, the response.
 * No network: an AF_UNIX socketpair stands in for the client, and events are delivered by
 * hand (only those the connection asked epoll for, as the real loop would).
 * Not compiled into the extension (setup.py takes only the .c files directly in csrc):
 * see tools/fuzz.sh. csrc/fuzz/fuzz_parser.c fuzzes the parser alone, without CPython.
 *
 * Input format: byte 0 flags (bit 0 streaming server, bit 1 half-close before the end),
 * byte 1 the size of each client write (0: everything at once), then the client's bytes.
 *
 * Besides ASan/UBSan it checks, after every input: no Python exception escaped into the
 * loop, a live connection is on a timeout list (else nothing would ever wake or expire it),
 * and no file descriptor was leaked.
 */
#include "../conn.h"
#include "../server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

PyMODINIT_FUNC PyInit__core(void);

static aw_server_t *servers[2]; /* [0] buffered, [1] streaming; owned by __main__ */

static const char setup_code[] =
    "import io, socket, _aw_fuzz_core as core\n"
    "def app(environ, start_response):\n"
    "    inp = environ['wsgi.input']\n"
    "    path = environ['PATH_INFO']\n"
    "    kind = path[1:2]\n"
    "    if kind == 'r':\n"
    "        body = inp.readline(7) + b''.join(inp.readlines())\n"
    "    else:\n"
    "        body = inp.read()\n"
    "    text = repr(sorted((k, v) for k, v in environ.items() if isinstance(v, str)))\n"
    "    if kind == 'e':\n"
    "        raise ValueError('before headers')\n"
    "    if kind == 'w':\n"
    "        w = start_response('200 OK', [('X-Len', str(len(body)))])\n"
    "        w(body[:50]); w(text.encode('latin-1', 'replace')[:200])\n"
    "        return []\n"
    "    if kind == 'x':\n"
    "        start_response('200 OK', [])\n"
    "        def gen():\n"
    "            yield b'a'\n"
    "            raise ValueError('after headers')\n"
    "        return gen()\n"
    "    if kind == 'f':\n"
    "        start_response('200 OK', [])\n"
    "        return environ['wsgi.file_wrapper'](io.BytesIO(body * 3), 5)\n"
    "    if kind == 'c':\n"
    "        start_response('200 OK', [('Content-Length', str(len(body)))])\n"
    "        return [body]\n"
    "    if kind == 'g':\n"
    "        start_response('201 Created', [('Content-Type', 'text/plain')])\n"
    "        return (bytes([65 + i]) * (i * 7000) for i in range(6))\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [body, text.encode('latin-1', 'replace')]\n"
    "def streaming_app(environ, start_response):\n"
    "    sentinel = environ['aiowsgi.input_sentinel']\n"
    "    inp = environ['wsgi.input']\n"
    "    n = 0\n"
    "    try:\n"
    "        if environ['PATH_INFO'][1:2] == 'r':\n"
    "            while True:\n"
    "                try:\n"
    "                    piece = inp.read(3)\n"
    "                except BlockingIOError:\n"
    "                    yield sentinel\n"
    "                    continue\n"
    "                if not piece:\n"
    "                    break\n"
    "                n += len(piece)\n"
    "        else:\n"
    "            for piece in inp:\n"
    "                if piece is sentinel:\n"
    "                    yield sentinel\n"
    "                else:\n"
    "                    n += len(piece)\n"
    "    except (core.ClientDisconnected, core.RequestTooLarge):\n"
    "        start_response('400 Bad Request', [])\n"
    "        yield b'bad body'\n"
    "        return\n"
    "    start_response('200 OK', [])\n"
    "    yield str(n).encode()\n"
    "setattr(streaming_app, core.STREAMING_ATTR, True)\n"
    "listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "errors = io.StringIO()\n"
    "opts = dict(header_timeout=1, keepalive=1, max_header_size=2048, max_body_size=20000,\n"
    "            spool_threshold=600, errors=errors, log=lambda *a: None,\n"
    "            access_log=lambda *a: None)\n"
    "servers = [core.Server(app, [listen.fileno()], **opts),\n"
    "           core.Server(streaming_app, [listen.fileno()], **opts)]\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("PYTHONMALLOC", "malloc", 1); /* every object through ASan's allocator */
    setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
    if (PyImport_AppendInittab("_aw_fuzz_core", PyInit__core) < 0)
        abort();
    Py_InitializeEx(0);
    PyObject *main = PyImport_AddModule("__main__"); // borrowed
    PyObject *globals = main ? PyModule_GetDict(main) : NULL; // borrowed
    PyObject *r = globals ? PyRun_String(setup_code, Py_file_input, globals, globals) : NULL;
    if (!r) {
        PyErr_Print();
        abort();
    }
    Py_DECREF(r);
    PyObject *list = PyDict_GetItemString(globals, "servers"); // borrowed
    for (int i = 0; i < 2; i++) {
        servers[i] = (aw_server_t *)PyList_GetItem(list, i);
        servers[i]->date_len = aw_format_date(time(NULL), servers[i]->date);
    }
    return 0;
}

static void drain(int fd)
{
    char sink[65536];
    while (read(fd, sink, sizeof(sink)) > 0) {
    }
}

static int lowest_free_fd(void)
{
    int fd = dup(0);
    if (fd >= 0)
        close(fd);
    return fd;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_conn: invariant broken: %s\n", what);
        abort();
    }
}

/* One event as the loop would deliver it: only what the connection registered for. */
static void deliver(aw_server_t *s, aw_conn_t *c, size_t before, int client)
{
    drain(client);
    uint32_t ev = c->io.events & (EPOLLIN | EPOLLOUT);
    if (ev)
        c->io.on_event(&c->io, ev);
    check(!PyErr_Occurred(), "a Python exception escaped into the loop");
    if (s->nconns > before) /* a timer list, or (APP_FLUSH) the turn's write list */
        check(c->timer.list != NULL || c->dirty, "a live connection is on no timer list");
    aw_conn_write_all(s); /* the loop's end of turn: its writes, then the closed */
    aw_conn_reap(s);      /* connections' memory goes */
    drain(client);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    aw_server_t *s = servers[data[0] & 1];
    int half_close = (data[0] & 2) != 0;
    size_t step = data[1] ? data[1] : size;
    data += 2;
    size -= 2;

    int free_fd = lowest_free_fd();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t before = s->nconns;
    aw_conn_t *c = aw_conn_new(s, &s->listeners[0], sv[0], (struct sockaddr *)&peer);
    check(c != NULL, "aw_conn_new failed");

    size_t off = 0;
    for (int round = 0; off < size && s->nconns > before && round < 100000; round++) {
        size_t n = size - off < step ? size - off : step;
        ssize_t w = write(sv[1], data + off, n);
        if (w > 0)
            off += (size_t)w;
        deliver(s, c, before, sv[1]);
    }
    if (half_close)
        shutdown(sv[1], SHUT_WR);
    for (int round = 0; s->nconns > before && round < 64; round++)
        deliver(s, c, before, sv[1]);
    if (s->nconns > before) {
        /* the connection waits for more bytes or for a timer: fire its timer */
        aw_conn_expire(c);
        aw_conn_reap(s);
        check(!PyErr_Occurred(), "a Python exception escaped from a timer");
    }
    check(s->nconns == before, "the connection survived its timer");
    close(sv[1]);
    check(fcntl(sv[0], F_GETFD) < 0, "the connection's socket was not closed");
    check(lowest_free_fd() == free_fd, "a file descriptor leaked");
    return 0;
}
