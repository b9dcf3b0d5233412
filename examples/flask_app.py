"""A Flask app served by aiowsgi: routes, a template, JSON, a form POST and a file upload.

Needs ``pip install flask``.  Run it, then open http://127.0.0.1:8000/ ::

    python examples/flask_app.py                   # aiowsgi.serve() on 127.0.0.1:8000
    python examples/flask_app.py 127.0.0.1:9000    # another HOST:PORT
    aiowsgi --chdir examples flask_app:app         # the command line

Routes (the same as examples/bottle_app.py):
    GET  /                  an HTML page (a Jinja2 template) with a form and an upload form
    GET  /hello/<name>      plain text
    GET  /api/info          JSON
    POST /greet             form field ``name``; answers an HTML page
    POST /upload            multipart field ``file``; answers JSON (name, size, sha256)
"""

import hashlib
import os
import sys

from flask import Flask, abort, jsonify, render_template_string, request

app = Flask(__name__)

PAGE = """<!doctype html>
<title>{{ title }}</title>
<h1>{{ title }}</h1>
{% if name %}<p>Hello, {{ name }}!</p>{% endif %}
<form method="post" action="{{ url_for('greet') }}">
  <input name="name" placeholder="your name"> <button>Greet</button>
</form>
<form method="post" action="{{ url_for('upload') }}" enctype="multipart/form-data">
  <input type="file" name="file"> <button>Upload</button>
</form>
"""


@app.get("/")
def index():
    return render_template_string(PAGE, title="Flask on aiowsgi", name=None)


@app.get("/hello/<name>")
def hello(name):
    return "Hello, %s!" % name, 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/api/info")
def info():
    return jsonify(framework="flask", path=request.path, query=request.args.to_dict())


@app.post("/greet")
def greet():
    name = request.form.get("name") or "stranger"
    return render_template_string(PAGE, title="Flask on aiowsgi", name=name)


@app.post("/upload")
def upload():
    upload = request.files.get("file")
    if upload is None:
        abort(400, "send a multipart form with a 'file' field")
    digest = hashlib.sha256()
    size = 0
    for block in iter(lambda: upload.stream.read(65536), b""):
        digest.update(block)
        size += len(block)
    return jsonify(filename=upload.filename, size=size, sha256=digest.hexdigest())


if __name__ == "__main__":
    # Run from a checkout (built in place, not installed): aiowsgi is in the folder above.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import aiowsgi

    aiowsgi.serve(app, bind=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
