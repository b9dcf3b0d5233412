"""A one-file Django project served by aiowsgi: settings in code, one view, no database.

Needs ``pip install django``.  Run it from this folder, then open http://127.0.0.1:8000/ ::

    cd examples && aiowsgi django_app:application     # the command line
    python examples/django_app.py                      # aiowsgi.serve() on 127.0.0.1:8000
    python examples/django_app.py 127.0.0.1:9000       # another HOST:PORT

A real project keeps its settings in ``settings.py`` and points the command line at the
``application`` object of its ``wsgi.py``: ``aiowsgi mysite.wsgi:application``.

The one view, at ``/``:
    GET    an HTML page (a Django template) with a form that posts a name and a file
    POST   form field ``name`` and, optionally, multipart field ``file``; answers JSON
"""

import hashlib
import os
import sys

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="aiowsgi-example-not-secret",  # a real project reads this from the environment
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
    # No CsrfViewMiddleware: this demo has no sessions or logins.  A real project keeps it
    # and puts {% csrf_token %} in its forms.
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)

import django  # noqa: E402  (settings must be configured first)
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponseNotAllowed, JsonResponse  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.template import Context, Engine  # noqa: E402
from django.urls import path  # noqa: E402

PAGE = Engine().from_string("""<!doctype html>
<title>{{ title }}</title>
<h1>{{ title }}</h1>
<form method="post" enctype="multipart/form-data">
  <input name="name" placeholder="your name">
  <input type="file" name="file">
  <button>Send</button>
</form>
""")


def index(request):
    if request.method == "GET":
        return HttpResponse(PAGE.render(Context({"title": "Django on aiowsgi"})))
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    answer = {"framework": "django", "name": request.POST.get("name") or "stranger"}
    upload = request.FILES.get("file")
    if upload is not None:
        digest = hashlib.sha256()
        for block in upload.chunks():
            digest.update(block)
        answer["file"] = {"filename": upload.name, "size": upload.size,
                          "sha256": digest.hexdigest()}
    return JsonResponse(answer)


urlpatterns = [path("", index)]

django.setup()
application = get_wsgi_application()

if __name__ == "__main__":
    # Run from a checkout (built in place, not installed): aiowsgi is in the folder above.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import aiowsgi

    aiowsgi.serve(application, bind=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
