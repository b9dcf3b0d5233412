"""The hello workload written the way a Django user would: a one-file project (settings in code,
as examples/django_app.py), one view, the default middleware a new project keeps that does not
need a database (security, common)."""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="aiowsgi-bench-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=["django.middleware.security.SecurityMiddleware",
                "django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after the settings)
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request):
    return HttpResponse(b"Hello, world!", content_type="text/plain")


urlpatterns = [path("hello", hello)]

application = get_wsgi_application()
