"""gunicorn settings, read from the working directory by every `gunicorn` started here (Dockerfile, tests).

The access log carries the path without its query string: the authorization callback's `auth_code`, and
any token a client puts in a URL, never reach a log. The request id is the one the response gave the
client (X-Request-ID), so an access line joins the application's JSON lines. Every field a client chooses is
escaped (wxplatform.core.access_log): `%0a` in a path cannot start a forged line, nor `%00` put a NUL in the file.
"""

import os

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s" %({x-request-id}o)s'
logger_class = "wxplatform.core.access_log.AccessLogger"
# X-Forwarded-Proto (https) is believed only from these, as in Django (settings.TRUSTED_PROXIES).
_proxies = [p.strip() for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()]
forwarded_allow_ips = ",".join(_proxies) or "127.0.0.1"

# Threads, not only processes: an anonymous authorization page waits on WeChat while its visitor does, and each
# process lets at most AUTHORIZE_CONCURRENCY (2) of them wait at once, so the other threads keep answering the
# API and WeChat's pushes however slow WeChat is. Each thread holds its own database connection (CONN_MAX_AGE).
worker_class = "gthread"
threads = 4
