"""aiowsgi's request parser against a reference one: h11 as the oracle, over generated requests
(issue 14).

Each case is a valid request built from parts (leading empty lines, method, target, version,
fields, and no body, a Content-Length body or a chunked one with extensions and trailers),
then, seven times in ten, one byte of one class replaced, inserted or deleted in one part, or,
three times in twenty, one field repeated, dropped or added.  The (part, operation, class)
triples are taken in turn, so that every byte class lands in every part; everything else comes
from ``random.Random("<seed>:<index>")``, so that one case replays alone:

    AIOWSGI_DIFF_SEED=<seed> AIOWSGI_DIFF_ONLY=<index> python3 -m pytest -q \\
        tests/test_parser_agrees_with_h11.py

One server serves every case, each on a fresh connection (one case in eight behind a good
request on it), the bytes in one write or (one case in eight) in two, then a half-close.  It
must accept exactly what the oracle accepts, refuse (400, 501 or 505, with Connection: close,
the app not called) what the oracle refuses, answer 501 to a method it does not know in a
request otherwise valid, and, when both accept, see the same method, target, version, header
fields (as the environ maps them) and body.

The oracle is h11 with the EXCEPTIONS and ADJUSTMENTS below: where the RFC leaves a choice and
SPEC section 4 decides otherwise than h11, or where h11 is more lenient than the RFC's grammar
and SPEC keeps to the grammar.  Each names its RFC section and says why.

AIOWSGI_DIFF_CASES sets how many cases (default 5000, about 3 s); ``make conformance``
(hardening.mk) runs 200,000 with a fresh seed (about 80 s).
"""

import ipaddress
import json
import os
import random
import re
import socket
import time
from collections import Counter

import h11

from tests.support.client import connect

SEED = os.environ.get("AIOWSGI_DIFF_SEED", "14")
CASES = int(os.environ.get("AIOWSGI_DIFF_CASES", "5000"))
ONLY = os.environ.get("AIOWSGI_DIFF_ONLY")
REFUSALS = (400, 501, 505)

# ---- the requests --------------------------------------------------------------------------

# llhttp's HTTP methods (its HTTP_METHOD_MAP, llhttp 8.1): the ones the server implements
KNOWN_METHODS = {
    b"DELETE", b"GET", b"HEAD", b"POST", b"PUT", b"CONNECT", b"OPTIONS", b"TRACE", b"COPY",
    b"LOCK", b"MKCOL", b"MOVE", b"PROPFIND", b"PROPPATCH", b"SEARCH", b"UNLOCK", b"BIND",
    b"REBIND", b"UNBIND", b"ACL", b"REPORT", b"MKACTIVITY", b"CHECKOUT", b"MERGE", b"M-SEARCH",
    b"NOTIFY", b"SUBSCRIBE", b"UNSUBSCRIBE", b"PATCH", b"PURGE", b"MKCALENDAR", b"LINK",
    b"UNLINK", b"SOURCE",
}
# HEAD is left out (its answer has no body to compare); "FOO" and "get" are known to no llhttp
METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"PROPFIND", b"PURGE", b"M-SEARCH",
           b"FOO", b"get"]
ORIGIN_TARGETS = [b"/", b"/a/b", b"/p?q=1&r", b"/%41%2Fb", b"/a#frag", b"//x", b"/a;b=c",
                  b"/~x!$&'()*+,;=:@", b"/a?b?c/d", b"/{x}|^`\"<>\\"]
ABSOLUTE_TARGETS = [b"http://example.com/x", b"https://h:8443/p?q", b"http://[::1]/",
                    b"http://192.0.2.1:80", b"HTTP://H?x", b"http://[v7.a:b]/", b"http://h:/p",
                    b"http://[::ffff:192.0.2.1]:1/a", b"a+b-c.d://h%41"]
CONNECT_TARGETS = [b"example.com:443", b"[::1]:8080", b"192.0.2.1:1"]
HOSTS = [b"example.com", b"example.com:8080", b"127.0.0.1", b"[::1]:80", b"", b"a%41b",
         b"xn--bcher-kva.example"]
FIELDS = [(b"User-Agent", b"t/1.0"), (b"Accept", b"*/*"), (b"X-Empty", b""),
          (b"X-Spaces", b"a  b"), (b"x-lower", b"v"), (b"X-Obs", b"caf\xe9"),
          (b"Cookie", b"a=1; b=2"), (b"X-!#$%&'*+.^`|~", b"t"), (b"X_Under", b"hidden"),
          (b"Accept-Language", b"en, fr;q=0.5"), (b"Content-Type", b"text/plain"),
          (b"Accept", b"text/html"), (b"X-Quoted", b'"a, b"')]
EXTENSIONS = [b"", b"", b";a", b";a=b", b';a="q \\" x"', b" ; a = b", b";a;b=c",
              b'\t;\tn\t=\t""', b";!#$%&'*+-.^_`|~=~"]
OWS = [b"", b" ", b" ", b"\t", b"  "]
ALNUM = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

CLASSES = {
    "nul": b"\x00",
    "ctl": bytes(range(1, 9)) + b"\x0b\x0c" + bytes(range(0x0e, 0x20)),
    "htab": b"\t",
    "lf": b"\n",
    "cr": b"\r",
    "sp": b" ",
    "del": b"\x7f",
    "obs-text": bytes(range(0x80, 0x100)),
    "digit": b"0123456789",
    "alpha": ALNUM[:52],
    "tchar-special": b"!#$%&'*+-.^_`|~",
    "delimiter": b'"(),/:;<=>?@[\\]{}',
}
ROLES = ["method", "sp", "target", "version", "name", "colon", "ows", "value", "eol",
         "chunk-size", "chunk-ext", "data"]
CHUNK_ROLES = ("chunk-size", "chunk-ext")
MUTATIONS = [(role, op, cls) for role in ROLES for op in ("replace", "insert")
             for cls in CLASSES] + [(role, "delete", None) for role in ROLES]
# what one byte cannot do: whole fields repeated, dropped, added
FIELD_MUTATIONS = ["repeat", "repeat other value", "drop host", "both framings",
                   "content-length list"]
VERSIONS = [b"HTTP/1.1"] * 14 + [b"HTTP/1.0"] * 4 + [b"HTTP/1.2", b"HTTP/2.0"]


class Case:
    """One request as parts: [role, bytes] segments, of which "data" ones are body bytes."""

    def __init__(self, index):
        self.index = index
        self.rng = random.Random("%s:%d" % (SEED, index))
        self.segments = []
        self.mutation = None

    def add(self, role, data):
        self.segments.append([role, data])

    @property
    def raw(self):
        return b"".join(data for _, data in self.segments)

    @property
    def lines(self):
        """The bytes with the body's data masked: what is read as lines."""
        return b"".join(b"d" * len(data) if role == "data" else data
                        for role, data in self.segments)

    def __repr__(self):
        return "case %d (seed %s), mutation %s: %r" % (self.index, SEED, self.mutation, self.raw)


def add_fields(case, fields):
    rng = case.rng
    for name, value in fields:
        case.add("name", name)
        case.add("colon", b":")
        case.add("ows", rng.choice(OWS))
        case.add("value", value)
        case.add("ows", rng.choice(OWS[:3]))
        case.add("eol", b"\r\n")


def add_chunked(case):
    rng = case.rng
    for _ in range(rng.randint(1, 3)):
        data = bytes(rng.choice(ALNUM) for _ in range(rng.randint(1, 20)))
        case.add("chunk-size", (b"0" * rng.randint(0, 2)) + b"%x" % len(data))
        case.add("chunk-ext", rng.choice(EXTENSIONS))
        case.add("eol", b"\r\n")
        case.add("data", data)
        case.add("eol", b"\r\n")
    case.add("chunk-size", b"0")
    case.add("chunk-ext", rng.choice(EXTENSIONS))
    case.add("eol", b"\r\n")
    add_fields(case, rng.sample([(b"X-Trailer", b"t"), (b"X-Sum", b"1 2")], rng.randint(0, 2)))
    case.add("eol", b"\r\n")


def request_line(case, need):
    """Method, target and version; need is the role a mutation will touch."""
    rng = case.rng
    kind = rng.choice(["origin"] * 5 + ["absolute"] * 2 + ["asterisk", "connect"])
    if need == "data" or need in CHUNK_ROLES:
        kind = rng.choice(["origin", "absolute"])
    version = b"HTTP/1.1" if need in CHUNK_ROLES else rng.choice(VERSIONS)
    if kind == "asterisk":
        method, target = b"OPTIONS", b"*"
    elif kind == "connect":
        method, target = b"CONNECT", rng.choice(CONNECT_TARGETS)
    else:
        method = rng.choice(METHODS)
        target = rng.choice(ORIGIN_TARGETS if kind == "origin" else ABSOLUTE_TARGETS)
    if rng.random() < 0.05:
        case.add("eol", b"\r\n")  # an empty line before the request line
    for role, data in (("method", method), ("sp", b" "), ("target", target), ("sp", b" "),
                       ("version", version), ("eol", b"\r\n")):
        case.add(role, data)
    return method, version


def mutate_fields(case, op, fields):
    """One field-level mutation of the list of (name, value) fields, in place."""
    rng = case.rng
    names = [name for name, _ in fields]
    if op.startswith("repeat") and fields:
        name, value = rng.choice(fields)
        fields.append((name, value if op == "repeat" else value + b"x"))
    elif op == "drop host" and b"Host" in names:
        del fields[names.index(b"Host")]
    elif op == "both framings" and b"Content-Length" in names:
        fields.append((b"Transfer-Encoding", b"chunked"))
    elif op == "both framings" and b"Transfer-Encoding" in names:
        fields.append((b"Content-Length", b"%d" % rng.randint(0, 9)))
    elif op == "content-length list" and b"Content-Length" in names:
        at = names.index(b"Content-Length")
        fields[at] = (b"Content-Length", fields[at][1] + b", " + fields[at][1])
    else:
        return
    case.mutation = ("fields", op)


def build(index):
    case = Case(index)
    rng = case.rng
    kind = rng.random()
    mutation = MUTATIONS[index % len(MUTATIONS)] if kind < 0.7 else None
    need = mutation[0] if mutation else None
    method, version = request_line(case, need)
    fields = [(b"Host", rng.choice(HOSTS))] if version != b"HTTP/1.0" or rng.random() < .5 else []
    fields += rng.sample(FIELDS, rng.randint(0, 4))
    body = None
    if method != b"CONNECT":
        choices = ["chunked"] if need in CHUNK_ROLES else ["length"] * 3 + ["chunked"] * 2
        if need in ("data",) + CHUNK_ROLES or rng.random() < 0.5:
            body = rng.choice(choices)
    data = bytes(rng.choice(ALNUM) for _ in range(rng.randint(1, 30)))
    if body == "length":
        fields.append((b"Content-Length", b"%d" % len(data)))
    elif body == "chunked":
        fields.append((b"Transfer-Encoding", b"chunked"))
    if 0.7 <= kind < 0.85:
        mutate_fields(case, FIELD_MUTATIONS[index % len(FIELD_MUTATIONS)], fields)
    rng.shuffle(fields)
    add_fields(case, fields)
    case.add("eol", b"\r\n")
    if body == "length":
        case.add("data", data)
    elif body == "chunked":
        add_chunked(case)
    if mutation:
        mutate(case, *mutation)
    return case


def mutate(case, role, op, cls):
    rng = case.rng
    places = [seg for seg in case.segments if seg[0] == role]
    if not places:
        return
    seg = rng.choice(places)
    data = seg[1]
    if op == "delete" and not data:
        return
    if op == "replace" and not data:
        op = "insert"
    byte = bytes([rng.choice(CLASSES[cls])]) if cls else b""
    at = rng.randrange(len(data) + (op == "insert"))
    seg[1] = data[:at] + byte + data[at + (op != "insert"):]
    case.mutation = (role, op, cls, at, byte)

# ---- the oracle ----------------------------------------------------------------------------


class Expect:
    """What the server must do: kind "accept" (with what the app must see), "refuse", "501"
    or "skip" (the oracle wants more bytes: not a complete request); reason: "h11" or the
    name of the exception that decided."""

    def __init__(self, kind, reason="h11", seen=None, detail=""):
        self.kind, self.reason, self.seen, self.detail = kind, reason, seen, detail

    def __repr__(self):
        return "%s (%s%s)" % (self.kind, self.reason, ": " + self.detail if self.detail else "")


def h11_request(raw):
    """h11's reading of raw: ("accept", Request, body, bytes it left after the request),
    ("refuse", its error) or ("skip",)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    events = []
    try:
        while not events or not isinstance(events[-1], h11.EndOfMessage):
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return ("skip",)
            events.append(event)
    except h11.RemoteProtocolError as exc:
        return ("refuse", str(exc))
    body = b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))
    return ("accept", events[0], body, len(conn.trailing_data[0]))


TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_LINE = re.compile(rb"[0-9A-Fa-f]+(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*\r\n"
                        % (TOKEN, TOKEN, QUOTED))
REG_NAME = rb"(?:[-A-Za-z0-9._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
AUTHORITY = re.compile(rb"(\[[^\]]*\]|%s)(?::([0-9]*))?" % REG_NAME)
ABSOLUTE = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)(.*)", re.S)
IPV_FUTURE = re.compile(rb"[vV][0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+,;=:]+")
BARE_LF = re.compile(rb"(?<!\r)\n")
BARE_CR = re.compile(rb"\r(?!\n)")
OBS_FOLD = re.compile(rb"\n[ \t]")
CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def valid_authority(value, host_required=False, port_required=False):
    """uri-host [ ":" port ], no userinfo (RFC 3986 3.2.2, 3.2.3; RFC 9110 4.2.4)."""
    m = AUTHORITY.fullmatch(value)
    if not m:
        return False
    host, port = m.group(1), m.group(2)
    if host.startswith(b"["):
        literal = host[1:-1]
        if not IPV_FUTURE.fullmatch(literal):
            try:
                ipaddress.IPv6Address(literal.decode("ascii"))
            except ValueError:
                return False
            if b"%" in literal:
                return False  # a zone id is not RFC 3986's
    if host_required and not host:
        return False
    return not port_required or bool(port)


def head_fields(raw):
    """(lower-case name, value) of each field line of a head whose lines all end in CRLF."""
    head = raw[:raw.index(b"\r\n\r\n")]
    return [(name.lower(), value.strip(b" \t"))
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])]


CHUNKED_HEAD = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked[ \t]*\r\n", re.I)


def without_extensions(raw):
    """raw with each chunk-size line that RFC 9112 7.1.1 allows cut down to its chunk-size, and
    whether one of them had whitespace before a ";" (h11 refuses that, see ADJUSTMENTS);
    invalid lines stay as they are, for h11 and EXCEPTIONS to judge."""
    end = raw.find(b"\r\n\r\n")
    if end < 0 or not CHUNKED_HEAD.search(raw[:end + 2]):
        return raw, False
    out, at, spaced = [raw[:end + 4]], end + 4, False
    while True:
        eol = raw.find(b"\r\n", at)
        size = re.match(rb"[0-9A-Fa-f]+", raw[at:eol]) if eol >= 0 else None
        if not size:
            break
        line = raw[at:eol + 2]
        valid = CHUNK_LINE.fullmatch(line)
        spaced |= bool(valid and re.search(rb"[ \t];", line))
        out.append(size.group() + b"\r\n" if valid else line)
        at = eol + 2
        if int(size.group(), 16) == 0:
            break
        out.append(raw[at:at + int(size.group(), 16) + 2])
        at += int(size.group(), 16) + 2
    out.append(raw[at:])
    return b"".join(out), spaced


def chunk_lines(raw):
    """The chunk-size lines of a chunked body h11 accepted, read as h11 reads them."""
    at, lines = raw.index(b"\r\n\r\n") + 4, []
    while True:
        end = raw.index(b"\r\n", at) + 2
        lines.append(raw[at:end])
        size = int(re.match(rb"[0-9A-Fa-f]+", raw[at:end]).group(), 16)
        if size == 0:
            return lines
        at = end + size + 2


def target_form_ok(method, target):
    if method == b"CONNECT":
        return valid_authority(target, host_required=True, port_required=True)
    if target.startswith(b"/"):
        return True
    if target == b"*":
        return method == b"OPTIONS"
    m = ABSOLUTE.fullmatch(target)
    return bool(m) and valid_authority(m.group(1), host_required=True)


class Context:
    """What the exceptions look at: the request's bytes as h11 consumed them, the same with its
    body masked, h11's Request, and the head's field lines as sent."""

    def __init__(self, raw, lines, request):
        self.raw, self.lines, self.request = raw, lines, request
        self.fields = head_fields(raw) if b"\r\n\r\n" in raw else []

    def count(self, name):
        return sum(1 for n, _ in self.fields if n == name)

    def header(self, name):
        return [v for n, v in self.request.headers if n == name]


# Where SPEC refuses what h11 accepts: (name, RFC reference, why, test on a Context).  The
# first that holds decides; they are tried in this order, the line-level ones first (the
# later ones read the head as CRLF lines).
EXCEPTIONS = [
    ("bare LF", "RFC 9112 2.2",
     "a recipient MAY take a lone LF for a line end, and h11 does; SPEC 4 refuses it anywhere "
     "a line can end, for a front end that reads it otherwise sees another request",
     lambda c: BARE_LF.search(c.lines)),
    ("bare CR", "RFC 9112 2.2",
     "a bare CR MUST be taken as invalid or replaced by SP; h11 lets one through after a ';' in "
     "a chunk-size line",
     lambda c: BARE_CR.search(c.lines)),
    ("obs-fold", "RFC 9112 5.2",
     "a server MUST either reject obs-fold with 400 or replace it with SP; h11 replaces, SPEC 4 "
     "refuses",
     lambda c: OBS_FOLD.search(c.lines)),
    ("control byte", "RFC 9110 5.5",
     "a field value (or a chunk extension) with a control byte other than HTAB is invalid, "
     "and recipients MAY keep such bytes, as h11 does; SPEC 4, like llhttp, refuses them",
     lambda c: CONTROL.search(c.lines)),
    ("HTTP major version", "RFC 9110 6.2",
     "h11 takes any DIGIT.DIGIT; the server speaks HTTP/1.x and answers 505 to another major",
     lambda c: not c.request.http_version.startswith(b"1.")),
    ("HTTP/1.x above 1.1 without Host", "RFC 9110 2.5, RFC 9112 3.2",
     "HTTP/1.2 and later are served as HTTP/1.1 (see ADJUSTMENTS), which must have a Host; h11 "
     "asks for one on HTTP/1.1 only",
     lambda c: c.request.http_version > b"1.1" and not c.header(b"host")),
    ("repeated or listed Content-Length", "RFC 9110 8.6",
     "a recipient MAY reject two equal Content-Length values or replace them by one, as h11 "
     "does; llhttp and SPEC 4 refuse them",
     lambda c: c.count(b"content-length") > 1 or any(
         b"," in v for n, v in c.fields if n == b"content-length")),
    ("Transfer-Encoding on HTTP/1.0", "RFC 9112 6.1",
     "a recipient MUST treat it as faulty framing; h11 reads the chunks",
     lambda c: c.request.http_version == b"1.0" and c.count(b"transfer-encoding")),
    ("Content-Length with Transfer-Encoding", "RFC 9112 6.3",
     "a server MAY reject such a request (and MUST close after it); h11 lets Transfer-Encoding "
     "win; SPEC 4 refuses it, a request smuggling vector",
     lambda c: c.count(b"content-length") and c.count(b"transfer-encoding")),
    ("repeated Content-Type", "RFC 9110 5.3, 8.3",
     "Content-Type is a singleton field, so two are invalid; h11 keeps both; SPEC 4 refuses",
     lambda c: c.count(b"content-type") > 1),
    ("invalid Host", "RFC 9112 3.2",
     "a request whose Host is not uri-host [ \":\" port ] MUST get 400; h11 does not look",
     lambda c: any(not valid_authority(v) for v in c.header(b"host"))),
    ("target form", "RFC 9112 3.2.2, 3.2.3, 3.2.4; RFC 9110 4.2",
     "h11 takes any VCHARs; the target must be the origin form, an absolute URI with a host "
     "(no userinfo), host:port for CONNECT and only there, or * for OPTIONS alone",
     lambda c: not target_form_ok(c.request.method, c.request.target)),
    ("chunk-size line", "RFC 9112 7.1, 7.1.1",
     "h11 takes anything after ';' and whitespace before the CRLF; the grammar is chunk-size "
     "*( BWS \";\" BWS name [ BWS \"=\" BWS ( token / quoted-string ) ] ) CRLF",
     lambda c: c.count(b"transfer-encoding") and not all(
         CHUNK_LINE.fullmatch(line) for line in chunk_lines(c.raw))),
]

# Where SPEC accepts what h11 refuses, or accepts it otherwise.
ADJUSTMENTS = [
    ("leading empty lines", "RFC 9112 2.2",
     "a server SHOULD ignore at least one empty line (CRLF) before the request-line; h11 "
     "refuses it: the oracle reads the request after them"),
    ("whitespace before ';' in a chunk extension", "RFC 9112 7.1.1",
     "chunk-ext = *( BWS \";\" BWS chunk-ext-name [ BWS \"=\" BWS chunk-ext-val ] ): h11 "
     "refuses the BWS before \";\", so the oracle hands it the valid chunk-size lines without "
     "their extensions (which neither side gives meaning to)"),
    ("HTTP/1.x above 1.1", "RFC 9110 2.5",
     "a higher minor version is processed as the highest one the server speaks: "
     "SERVER_PROTOCOL is HTTP/1.1 (h11 reports the version sent)"),
    ("absolute form", "RFC 9112 3.2.2",
     "the origin server MUST ignore Host and use the target's authority: HTTP_HOST is it"),
    ("unknown method", "RFC 9110 9.1",
     "h11 takes any token for a method; a server answers 501 to one it does not implement: "
     "those outside llhttp's table, in a request otherwise valid"),
]


def mask_length_body(lines, request):
    """lines with a Content-Length body masked where h11 framed it (after the head's end, found
    as h11 finds it): a byte inserted at the head's end is body there, not a line's."""
    lengths = [value for name, value in request.headers if name == b"content-length"]
    if not lengths:
        return lines
    start = re.search(rb"\n\r?\n", lines).end()
    n = int(lengths[0])
    return lines[:start] + b"d" * len(lines[start:start + n]) + lines[start + n:]


def environ_of(request, body, host):
    """The header keys of the environ, as SPEC 4 maps h11's fields."""
    out = {}
    for name, value in request.headers.raw_items():
        name, value = name.decode("latin-1"), value.decode("latin-1")
        if "_" in name:
            continue
        lower = name.lower()
        key = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}.get(
            lower, "HTTP_" + name.upper().replace("-", "_"))
        out[key] = out[key] + "," + value if key in out else value
    if any(name == b"transfer-encoding" for name, _ in request.headers):
        out["CONTENT_LENGTH"] = str(len(body))  # what a buffered chunked body gets
    if host is not None:
        out["HTTP_HOST"] = host.decode("latin-1")
    return out


def oracle(case, fired):
    """What the server must do with case: h11's verdict (read after the ADJUSTMENTS), then the
    EXCEPTIONS, then the method. fired counts the exceptions and adjustments that decided."""
    raw, lines = case.raw, case.lines
    while raw.startswith(b"\r\n"):
        raw, lines = raw[2:], lines[2:]
        fired["leading empty lines"] += 1
    cut, spaced = without_extensions(raw)
    verdict = h11_request(cut)
    if verdict[0] != "accept":
        return Expect(verdict[0], detail=verdict[1] if verdict[0] == "refuse" else "")
    if spaced:
        fired["whitespace before ';' in a chunk extension"] += 1
    request, body, left = verdict[1:]
    lines = mask_length_body(lines, request)
    ctx = Context(raw[:len(raw) - left], lines[:len(raw) - left], request)
    for name, _, _, holds in EXCEPTIONS:
        if holds(ctx):
            return Expect("refuse", name)
    if request.method not in KNOWN_METHODS:
        return Expect("501", "unknown method")
    version = request.http_version
    if version > b"1.1":
        fired["HTTP/1.x above 1.1"] += 1
        version = b"1.1"
    m = ABSOLUTE.fullmatch(request.target) if request.method != b"CONNECT" else None
    if m:
        fired["absolute form"] += 1
    return Expect("accept", "h11", {
        "REQUEST_METHOD": request.method.decode("latin-1"),
        "RAW_URI": request.target.decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/" + version.decode("latin-1"),
        "headers": environ_of(request, body, m.group(1) if m else None),
        "body": body.decode("latin-1"),
    })

# ---- the server's side ---------------------------------------------------------------------


def exchange(address, raw, split):
    """Send raw (in two writes when split), half-close, read to the end: the bytes back."""
    with connect(address) as sock:
        try:
            if split:
                sock.sendall(raw[:split])
                time.sleep(0.001)
            sock.sendall(raw[split:])
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # answered and closed (or reset) before the last bytes: the answer is read
        out = bytearray()
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                return bytes(out)
            out += data


PIPELINED_FIRST = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"


def responses(data):
    """(status, headers, body) of each whole response in data, in order."""
    out = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out
        lines = data[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        out.append((int(lines[0].split()[1]), headers, data[end + 4:end + 4 + length]))
        data = data[end + 4 + length:]


def answer_to(data, pipelined):
    """The response to the case (the second one when it came behind PIPELINED_FIRST, whose
    answer must be the app's); None when there is none."""
    answers = responses(data)
    if pipelined:
        if not answers or answers[0][1].get("x-parsed") != "1":
            return "bad"
        answers = answers[1:]
    return answers[0] if answers else None


def check(expect, response):
    """A description of how the server's answer differs from what is expected; None if not."""
    if response is None:
        return "no answer, where %s" % expect
    if response == "bad":
        return "the good request before it was not answered by the app"
    status, headers, body = response
    parsed = headers.get("x-parsed") == "1"
    if expect.kind == "accept":
        if not parsed:
            return "refused with %d, where %s" % (status, expect)
        got = json.loads(body)
        want = dict(expect.seen)
        got_headers, want_headers = got.pop("headers"), want.pop("headers")
        for h in (got_headers, want_headers):
            if "HTTP_TRANSFER_ENCODING" in h:  # h11 lower-cases it
                h["HTTP_TRANSFER_ENCODING"] = h["HTTP_TRANSFER_ENCODING"].lower()
        got = {key: got[key] for key in want}
        if got != want or got_headers != want_headers:
            return "parsed otherwise: server %r %r, oracle %r %r" % (got, got_headers, want,
                                                                    want_headers)
        return None
    if parsed:
        return "the app was called, where %s" % expect
    if expect.kind == "501" and status != 501:
        return "answered %d, where %s" % (status, expect)
    if expect.kind == "refuse" and status not in REFUSALS:
        return "answered %d, where %s" % (status, expect)
    if headers.get("connection", "").lower() != "close":
        return "answered %d without Connection: close" % status
    return None


def test_the_server_accepts_exactly_what_h11_accepts(start):
    server = start.apps("tests.support.apps:parsed_request")
    indexes = [int(ONLY)] if ONLY else range(CASES)
    outcomes, fired, mutated, failures = Counter(), Counter(), set(), []
    started = time.monotonic()
    for index in indexes:
        case = build(index)
        expect = oracle(case, fired)
        outcomes[expect.kind] += 1
        if expect.kind == "skip":
            continue
        fired[expect.reason] += 1
        if case.mutation:
            mutated.add(case.mutation[:3] if case.mutation[0] != "fields" else case.mutation)
        pipelined = case.rng.random() < 0.125
        raw = PIPELINED_FIRST + case.raw if pipelined else case.raw
        split = case.rng.randrange(1, len(raw)) if case.rng.random() < 0.125 else 0
        answer = exchange(server.address, raw, split)
        problem = check(expect, answer_to(answer, pipelined))
        if problem:
            failures.append("%s\n    %s" % (case, problem))
    server.check_alive()
    report = "%d cases in %.1f s, seed %s: %s; decided by %s" % (
        len(indexes), time.monotonic() - started, SEED, dict(outcomes), dict(fired))
    print(report)
    assert not failures, "%d of %d cases differ (%s); the first:\n%s\nreplay one with " \
        "AIOWSGI_DIFF_SEED=%s AIOWSGI_DIFF_ONLY=<case>" % (
            len(failures), len(indexes), report, "\n".join(failures[:10]), SEED)
    if ONLY or CASES < 2000:
        return
    # the test tests something: both verdicts came, every exception and adjustment decided at
    # least one case, and every part got every class of byte
    assert outcomes["accept"] > CASES // 10 and outcomes["refuse"] > CASES // 10, report
    unused = [name for name, *_ in EXCEPTIONS + ADJUSTMENTS if not fired[name]]
    assert not unused, "exceptions that decided nothing: %s (%s)" % (unused, report)
    wanted = set(MUTATIONS) | {("fields", op) for op in FIELD_MUTATIONS}
    assert len(mutated) > 0.9 * len(wanted), sorted(wanted - mutated)[:20]
