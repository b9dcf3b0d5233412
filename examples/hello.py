"""The smallest WSGI app.  Run: ``python examples/hello.py`` (or ``aiowsgi examples.hello:app``)."""


def app(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    import aiowsgi

    aiowsgi.serve(app, bind="127.0.0.1:8000")
