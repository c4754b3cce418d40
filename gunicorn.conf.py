"""gunicorn settings, read from the working directory by every `gunicorn` started here (Dockerfile, tests).

The access log carries the path without its query string: the authorization callback's `auth_code`, and
any token a client puts in a URL, never reach a log. The request id is the one the response gave the
client (X-Request-ID), so an access line joins the application's JSON lines. Every field a client chooses is
escaped (wxplatform.core.access_log): `%0a` in a path cannot start a forged line, nor `%00` put a NUL in the file.
"""

import os

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s" %({x-request-id}o)s'
logger_class = "wxplatform.core.access_log.AccessLogger"
# Port from PORT (default 8000) on every interface, so that a container on the host network can move it.
bind = [f"0.0.0.0:{os.environ.get('PORT') or '8000'}"]
# gunicorn never interprets forwarding headers itself: Django does, from TRUSTED_PROXIES (wxplatform/core/proxies.py),
# which are CIDRs, while forwarded_allow_ips takes bare addresses only (gunicorn 23 refuses "10.0.0.0/8"). Were
# gunicorn to trust a client that Django does not, that client's X-Forwarded-Proto would set wsgi.url_scheme to
# https, and Django, having dropped the header, would fall back to that scheme: HTTPS claimed by anyone. With an
# empty list gunicorn passes the headers through untouched and the scheme stays that of the connection; only
# TrustedProxyMiddleware decides (SECURE_PROXY_SSL_HEADER reads the header it kept).
forwarded_allow_ips = ""

# Threads, not only processes: an anonymous authorization page waits on WeChat while its visitor does, and each
# process lets at most AUTHORIZE_CONCURRENCY (2) of them wait at once, so the other threads keep answering the
# API and WeChat's pushes however slow WeChat is. Each thread holds its own database connection (CONN_MAX_AGE).
worker_class = "gthread"
threads = 4
