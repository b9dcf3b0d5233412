"""A Falcon app served by aiowsgi: resources, JSON, a form POST and a file upload.

Needs ``pip install falcon`` (3.0 or later).  Run it, then open http://127.0.0.1:8000/ ::

    python examples/falcon_app.py                  # aiowsgi.serve() on 127.0.0.1:8000
    python examples/falcon_app.py 127.0.0.1:9000   # another HOST:PORT
    aiowsgi --chdir examples falcon_app:app        # the command line

Routes:
    GET  /                  an HTML page with a form and an upload form
    GET  /hello/{name}      plain text
    GET  /api/info          JSON
    POST /greet             form field ``name``; answers JSON
    POST /upload            multipart field ``file``; answers JSON (name, size, sha256)
"""

import hashlib
import os
import sys

import falcon

PAGE = """<!doctype html>
<title>Falcon on aiowsgi</title>
<h1>Falcon on aiowsgi</h1>
<form method="post" action="/greet">
  <input name="name" placeholder="your name"> <button>Greet</button>
</form>
<form method="post" action="/upload" enctype="multipart/form-data">
  <input type="file" name="file"> <button>Upload</button>
</form>
"""


class Index:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = PAGE


class Hello:
    def on_get(self, req, resp, name):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, %s!" % name


class Info:
    def on_get(self, req, resp):
        resp.media = {"framework": "falcon", "path": req.path, "query": dict(req.params)}


class Greet:
    def on_post(self, req, resp):
        form = req.get_media()  # falcon parses application/x-www-form-urlencoded into a dict
        name = form.get("name") or "stranger"
        resp.media = {"greeting": "Hello, %s!" % name}


class Upload:
    def on_post(self, req, resp):
        for part in req.get_media():  # multipart/form-data, one part at a time
            if part.name != "file":
                continue
            digest = hashlib.sha256()
            size = 0
            for block in iter(lambda: part.stream.read(65536), b""):
                digest.update(block)
                size += len(block)
            resp.media = {"filename": part.filename, "size": size, "sha256": digest.hexdigest()}
            return
        raise falcon.HTTPBadRequest(description="send a multipart form with a 'file' field")


app = falcon.App()
app.add_route("/", Index())
app.add_route("/hello/{name}", Hello())
app.add_route("/api/info", Info())
app.add_route("/greet", Greet())
app.add_route("/upload", Upload())

if __name__ == "__main__":
    # Run from a checkout (built in place, not installed): aiowsgi is in the folder above.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import aiowsgi

    aiowsgi.serve(app, bind=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
