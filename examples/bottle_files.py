"""A small file and video host with bottle on aiowsgi.

Run: ``python examples/bottle_files.py DIR [PORT]`` (127.0.0.1, port 8000 by default; 0 picks
a free port) and open http://127.0.0.1:8000/ : the files of DIR are listed as links; videos
and audio get a player page too.  Files are served with ``bottle.static_file``, which hands
the open file to aiowsgi's ``wsgi.file_wrapper``: the kernel copies it to the socket with
sendfile(2), so a 4 GB video costs the server no memory and no Python time per byte.
``static_file`` also answers HEAD, ``If-Modified-Since``/``If-None-Match`` (304) and
``Range`` requests (206), which is what lets a browser seek in a video or resume a download.

As a WSGI app for another launcher: ``make_app(DIR)`` returns the bottle app, e.g.
``aiowsgi --factory 'examples.bottle_files:from_env'`` with FILES_DIR=DIR in the environment.
"""

import html
import mimetypes
import os
import sys
from urllib.parse import quote

import bottle

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title></head>
<body><h1>%(title)s</h1>
%(content)s
</body></html>
"""


def _page(title, content):
    bottle.response.content_type = "text/html; charset=utf-8"
    return PAGE % {"title": html.escape(title), "content": content}


def _playable(name):
    kind = (mimetypes.guess_type(name)[0] or "").split("/")[0]
    return kind if kind in ("video", "audio") else None


def make_app(root):
    """The bottle app serving the regular files directly inside ``root``."""
    root = os.path.abspath(root)
    app = bottle.Bottle()

    @app.get("/")
    def listing():
        rows = []
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if not os.path.isfile(path) or name.startswith("."):
                continue
            link = '<a href="/files/%s">%s</a> (%d bytes)' % (
                quote(name), html.escape(name), os.path.getsize(path))
            if _playable(name):
                link += ' <a href="/watch/%s">[play]</a>' % quote(name)
            rows.append("<li>%s</li>" % link)
        return _page("Files in %s" % (os.path.basename(root) or root),
                     "<ul>\n%s\n</ul>" % "\n".join(rows) if rows else "<p>No files.</p>")

    @app.get("/files/<name>")
    def file(name):
        # static_file refuses names that leave root (403) and missing files (404)
        return bottle.static_file(name, root=root)

    @app.get("/watch/<name>")
    def watch(name):
        kind = _playable(name)
        if not kind or not os.path.isfile(os.path.join(root, name)):
            return bottle.HTTPError(404, "No such video or audio file.")
        return _page(name, '<%s controls autoplay style="max-width:100%%" src="/files/%s">'
                           '</%s><p><a href="/">back</a></p>' % (kind, quote(name), kind))

    return app


def from_env():
    """Factory for launchers: serves the directory named by $FILES_DIR."""
    return make_app(os.environ["FILES_DIR"])


if __name__ == "__main__":
    # Run from a checkout (built in place, not installed): aiowsgi is in the folder above.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import aiowsgi

    if len(sys.argv) not in (2, 3) or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: python examples/bottle_files.py DIR [PORT]")
    port = int(sys.argv[2]) if len(sys.argv) == 3 else 8000
    aiowsgi.serve(make_app(sys.argv[1]), bind="127.0.0.1:%d" % port)
