# The project package is deliberately not called `platform`: that name would shadow the standard
# library's `platform` module, which `uuid` (and so Django) imports at start-up.
from .celery import app as celery_app

__all__ = ["celery_app"]
