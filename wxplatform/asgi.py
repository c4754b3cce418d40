import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wxplatform.settings")

application = get_asgi_application()

# A web process publishes tasks inside requests that WeChat times out after 5 s: it must fail fast.
from wxplatform.celery import app as celery_app  # noqa: E402 - after Django is set up
from wxplatform.core.queueing import publish_fail_fast  # noqa: E402

publish_fail_fast(celery_app)
