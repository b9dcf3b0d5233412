"""A bottle app served by aiowsgi: routes, a template, JSON, a form POST and a file upload.

Needs ``pip install bottle``.  Run it, then open http://127.0.0.1:8000/ ::

    python examples/bottle_app.py                  # bottle.run(server="aiowsgi") on 127.0.0.1:8000
    python examples/bottle_app.py 127.0.0.1:9000   # another HOST:PORT
    aiowsgi --chdir examples bottle_app:app        # the command line instead of bottle.run

Routes:
    GET  /                  an HTML page (a bottle SimpleTemplate) with a form and an upload form
    GET  /hello/<name>      plain text
    GET  /api/info          JSON
    POST /greet             form field ``name``; answers an HTML page
    POST /upload            multipart field ``file``; answers JSON (name, size, sha256)
"""

import hashlib
import os
import sys

import bottle

app = bottle.Bottle()

PAGE = bottle.SimpleTemplate("""<!doctype html>
<title>{{title}}</title>
<h1>{{title}}</h1>
% if name:
<p>Hello, {{name}}!</p>
% end
<form method="post" action="/greet">
  <input name="name" placeholder="your name"> <button>Greet</button>
</form>
<form method="post" action="/upload" enctype="multipart/form-data">
  <input type="file" name="file"> <button>Upload</button>
</form>
""")


@app.get("/")
def index():
    return PAGE.render(title="bottle on aiowsgi", name=None)


@app.get("/hello/<name>")
def hello(name):
    bottle.response.content_type = "text/plain; charset=utf-8"
    return "Hello, %s!" % name


@app.get("/api/info")
def info():
    # bottle turns a returned dict into a JSON response.
    return {"framework": "bottle", "path": bottle.request.path, "query": dict(bottle.request.query)}


@app.post("/greet")
def greet():
    name = bottle.request.forms.getunicode("name") or "stranger"
    return PAGE.render(title="bottle on aiowsgi", name=name)


@app.post("/upload")
def upload():
    upload = bottle.request.files.get("file")
    if upload is None:
        bottle.abort(400, "send a multipart form with a 'file' field")
    digest = hashlib.sha256()
    size = 0
    while True:
        block = upload.file.read(65536)
        if not block:
            break
        digest.update(block)
        size += len(block)
    return {"filename": upload.raw_filename, "size": size, "sha256": digest.hexdigest()}


if __name__ == "__main__":
    # Run from a checkout (built in place, not installed): aiowsgi is in the folder above.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import aiowsgi.bottle  # noqa: F401  (registers server="aiowsgi")

    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000").rpartition(":")
    bottle.run(app, server="aiowsgi", host=host, port=int(port))
