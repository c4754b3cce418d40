# Production image: web (gunicorn), worker and beat all run from it; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 app

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY wxplatform ./wxplatform
COPY tenants ./tenants
COPY drafts ./drafts
COPY locale ./locale
COPY manage.py gunicorn.conf.py ./
RUN pip install -c constraints.txt . \
    && DEBUG=true python manage.py collectstatic --noinput \
    && mkdir -p /app/var/metrics \
    && chown -R app:app /app

USER app
EXPOSE 8000
CMD ["gunicorn", "wxplatform.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
