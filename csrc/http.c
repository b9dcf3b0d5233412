/* http.c: HTTP's vocabulary.
 *
 * Owns: the one table of status lines (the server's own answers and static files; an app's
 * status line is the app's), HTTP-dates formatted and parsed, and splitting a request target
 * into path and query with the path's percent-decoding (what PATH_INFO holds and what
 * --static matches, decoded by one function). Must not include Python.h nor keep state.
 */
#include "http.h"

#include <string.h>

/* ---- status lines: one table, checked by a test ------------------------------------------ */

static const struct {
    int code;
    const char *reason;
} status_table[] = {
    {.code = 100, .reason = "Continue"},
    {.code = 200, .reason = "OK"},
    {.code = 206, .reason = "Partial Content"},
    {.code = 301, .reason = "Moved Permanently"},
    {.code = 304, .reason = "Not Modified"},
    {.code = 400, .reason = "Bad Request"},
    {.code = 403, .reason = "Forbidden"},
    {.code = 404, .reason = "Not Found"},
    {.code = 405, .reason = "Method Not Allowed"},
    {.code = 408, .reason = "Request Timeout"},
    {.code = 412, .reason = "Precondition Failed"},
    {.code = 413, .reason = "Content Too Large"},
    {.code = 416, .reason = "Range Not Satisfiable"},
    {.code = 431, .reason = "Request Header Fields Too Large"},
    {.code = 500, .reason = "Internal Server Error"},
    {.code = 501, .reason = "Not Implemented"},
    {.code = 503, .reason = "Service Unavailable"},
    {.code = 505, .reason = "HTTP Version Not Supported"},
};

#define N_STATUS ((int)(sizeof(status_table) / sizeof(status_table[0])))

const char *aw_status_reason(int status)
{
    for (int i = 0; i < N_STATUS; i++) {
        if (status_table[i].code == status)
            return status_table[i].reason;
    }
    return "Error";
}

int aw_status_count(void)
{
    return N_STATUS;
}

/* The i-th line of the table: its code, and its reason in *reason. */
int aw_status_at(int i, const char **reason)
{
    *reason = status_table[i].reason;
    return status_table[i].code;
}

/* ---- HTTP-dates (RFC 9110 5.6.7) --------------------------------------------------------- */

static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *two_digits(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* The IMF-fixdate of t (years 0 to 9999), formatted by hand: strftime would follow the C
 * locale, and snprintf costs more than the rest of a static file's head. Returns its length. */
size_t aw_http_date(time_t t, char out[AW_HTTP_DATE_LEN + 1])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        out[0] = '\0';
        return 0;
    }
    int year = tm.tm_year + 1900;
    char *p = out;
    memcpy(p, days[tm.tm_wday], 3);
    memcpy(p + 3, ", ", 2);
    p = two_digits(p + 5, tm.tm_mday);
    *p++ = ' ';
    memcpy(p, months[tm.tm_mon], 3);
    p[3] = ' ';
    p = two_digits(p + 4, year / 100);
    p = two_digits(p, year % 100);
    *p++ = ' ';
    p = two_digits(p, tm.tm_hour);
    *p++ = ':';
    p = two_digits(p, tm.tm_min);
    *p++ = ':';
    p = two_digits(p, tm.tm_sec);
    memcpy(p, " GMT", 5);
    return AW_HTTP_DATE_LEN;
}

typedef struct {
    const char *p, *end;
} aw_cursor_t;

static int take_char(aw_cursor_t *c, char ch)
{
    if (c->p == c->end || *c->p != ch)
        return 0;
    c->p++;
    return 1;
}

/* A number of min to max digits. */
static int take_int(aw_cursor_t *c, int min, int max, int *v)
{
    int n = 0;
    *v = 0;
    while (n < max && c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        *v = *v * 10 + (*c->p++ - '0');
        n++;
    }
    return n >= min;
}

/* A month name, spelt as RFC 9110 does (case-sensitive). */
static int take_month(aw_cursor_t *c, int *mon)
{
    for (int i = 0; i < 12 && c->end - c->p >= 3; i++) {
        if (memcmp(c->p, months[i], 3) == 0) {
            *mon = i;
            c->p += 3;
            return 1;
        }
    }
    return 0;
}

static int take_time(aw_cursor_t *c, struct tm *tm)
{
    return take_int(c, 2, 2, &tm->tm_hour) && take_char(c, ':') &&
           take_int(c, 2, 2, &tm->tm_min) && take_char(c, ':') && take_int(c, 2, 2, &tm->tm_sec);
}

/* After the day name and ", ": "06 Nov 1994 08:49:37 GMT" (IMF-fixdate) or
 * "06-Nov-94 08:49:37 GMT" (the obsolete RFC 850 form). */
static int take_fixdate(aw_cursor_t *c, struct tm *tm, int *year)
{
    if (!take_int(c, 2, 2, &tm->tm_mday))
        return 0;
    if (take_char(c, '-')) {
        if (!take_month(c, &tm->tm_mon) || !take_char(c, '-') || !take_int(c, 2, 2, year))
            return 0;
        *year += *year < 70 ? 2000 : 1900; /* RFC 9110 5.6.7: no more than 50 years ahead */
    } else if (!take_char(c, ' ') || !take_month(c, &tm->tm_mon) || !take_char(c, ' ') ||
               !take_int(c, 4, 4, year)) {
        return 0;
    }
    return take_char(c, ' ') && take_time(c, tm) && c->end - c->p == 4 &&
           memcmp(c->p, " GMT", 4) == 0;
}

/* After the day name and " ": "Nov  6 08:49:37 1994" (the obsolete asctime form). */
static int take_asctime(aw_cursor_t *c, struct tm *tm, int *year)
{
    if (!take_month(c, &tm->tm_mon) || !take_char(c, ' '))
        return 0;
    take_char(c, ' '); /* a one-digit day is padded with a space */
    return take_int(c, 1, 2, &tm->tm_mday) && take_char(c, ' ') && take_time(c, tm) &&
           take_char(c, ' ') && take_int(c, 4, 4, year) && c->p == c->end;
}

/* An HTTP-date in any of its three forms (a recipient must accept all three). Returns 0 with
 * *t set, or -1 when s is not one (the field is then ignored, RFC 9110 13.1.3). */
int aw_http_date_parse(const char *s, size_t n, time_t *t)
{
    aw_cursor_t c = {.p = s, .end = s + n};
    struct tm tm = {0};
    int year = 0;
    while (c.p < c.end && ((*c.p >= 'A' && *c.p <= 'Z') || (*c.p >= 'a' && *c.p <= 'z')))
        c.p++; /* the day name: not checked against the date */
    int ok = take_char(&c, ',') ? take_char(&c, ' ') && take_fixdate(&c, &tm, &year)
                                : take_char(&c, ' ') && take_asctime(&c, &tm, &year);
    if (!ok || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -1;
    tm.tm_year = year - 1900;
    *t = timegm(&tm);
    return 0;
}

/* ---- the request target ------------------------------------------------------------------ */

/* Split the path span parser.c found (origin and absolute forms: from the path on) into the
 * path, ending at the first '?' or '#', and the query, from that '?' to a '#' after it. */
void aw_path_split(const char *p, size_t n, aw_target_t *t)
{
    const char *end = p + n, *path_end = p;
    while (path_end < end && *path_end != '?' && *path_end != '#')
        path_end++;
    *t = (aw_target_t){.path = p, .path_len = (size_t)(path_end - p)};
    if (path_end < end && *path_end == '?') {
        const char *q = path_end + 1, *frag = memchr(q, '#', (size_t)(end - q));
        t->query = q;
        t->query_len = (size_t)((frag ? frag : end) - q);
    }
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode p[0..n) into out (room for n bytes; never more is written): "%xx" becomes its
 * byte, anything else (a '%' without two hex digits too) is copied. Returns the length. */
size_t aw_percent_decode(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 &&
            (lo = hexval(p[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    return o;
}
