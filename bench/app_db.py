"""TechEmpower's "single query" and "fortunes" on PostgreSQL, as a plain WSGI app.

The database is the runner's throw-away cluster (bench/pg.py); its libpq connection string comes in
$BENCH_PG.  Each app thread opens its own psycopg 3 connection on first use and keeps it
(thread-local), whatever server runs the app; autocommit, so no transaction stays open between
requests, and psycopg prepares the two statements after their first few runs on a connection.
The query and row-fetching code is shared with the flask version (app_flask_db.py); only the
response is built differently.  Other paths fall through to apps.py (the runner's readiness probe
asks for /hello).
"""

import html
import json
import os
import random
import threading
from operator import itemgetter

import psycopg

import apps
from pg import ADDED_FORTUNE, WORLD_ROWS

_local = threading.local()


def connection():
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(os.environ["BENCH_PG"], autocommit=True)
    return conn


def random_world():
    """(id, randomnumber) of one random row of World."""
    return connection().execute("SELECT id, randomnumber FROM world WHERE id = %s",
                                (random.randint(1, WORLD_ROWS),)).fetchone()


def fortunes():
    """Every row of Fortune plus one made at request time, as (id, message), sorted by message."""
    rows = connection().execute("SELECT id, message FROM fortune").fetchall()
    rows.append((0, ADDED_FORTUNE))
    rows.sort(key=itemgetter(1))
    return rows


def _respond(start_response, content_type, body):
    start_response("200 OK", [("Content-Type", content_type),
                              ("Content-Length", str(len(body)))])
    return [body]


def db(environ, start_response):
    world_id, number = random_world()
    body = json.dumps({"id": world_id, "randomNumber": number}).encode()
    return _respond(start_response, "application/json", body)


PAGE_HEAD = ("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
             "<tr><th>id</th><th>message</th></tr>")
PAGE_ROW = "<tr><td>%d</td><td>%s</td></tr>"
PAGE_TAIL = "</table></body></html>"


def fortunes_page(environ, start_response):
    rows = "".join(PAGE_ROW % (fortune_id, html.escape(message))
                   for fortune_id, message in fortunes())
    body = (PAGE_HEAD + rows + PAGE_TAIL).encode()
    return _respond(start_response, "text/html; charset=utf-8", body)


ROUTES = {"/db": db, "/fortunes": fortunes_page}


def app(environ, start_response):
    return ROUTES.get(environ.get("PATH_INFO", ""), apps.app)(environ, start_response)


application = app
