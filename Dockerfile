# Production image: web (gunicorn), worker and beat all run from it; docker-compose.yml picks the command.
# What goes in is the build context minus .dockerignore (tests, benches, the WeChat emulator, var/), so a new
# app is in the image without touching this file. BASE_IMAGE lets a machine without a registry supply its own
# base (make image-test builds one with debootstrap); it must provide `python` 3.11 with the venv module.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: dependencies into a virtualenv, static files collected --------------------------------------------
FROM ${BASE_IMAGE} AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
WORKDIR /app
# The dependencies first, from the project metadata alone, so that a change to the code reuses this layer.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt .
# Then the project itself, not editable: its packages land in /opt/venv beside the dependencies, and the final
# stage takes /opt/venv whole. Every dependency ships a binary wheel, so no compiler is needed here either.
COPY . .
RUN pip install --no-deps --force-reinstall -c constraints.txt . \
    && pip uninstall -y pip setuptools \
    && rm -rf build *.egg-info
# collectstatic loads the settings, which refuse to start without secrets when DEBUG is off. These values exist
# only for this one command in this stage; the real ones come from the environment at run time.
RUN SECRET_KEY=build-only TOKEN_ENCRYPTION_KEYS=YnVpbGQtb25seS1ub3QtYS1yZWFsLWtleS0wMTIzNDU= \
    WECHAT_COMPONENT_APPID=build-only WECHAT_COMPONENT_APPSECRET=build-only WECHAT_COMPONENT_TOKEN=build-only \
    WECHAT_COMPONENT_AES_KEY=build-only DEBUG=false \
    python manage.py collectstatic --noinput \
    && rm -rf /app/var/metrics /app/var/cache /app/var/broker /app/var/*.sqlite3

# --- final: the virtualenv and the project, run as an unprivileged user ------------------------------------------
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    # The project runs from /app (templates, locale and static files live beside the code, not in the wheel),
    # so /app comes first on the path for gunicorn and celery as it does for manage.py.
    PYTHONPATH=/app

RUN useradd --create-home --uid 1000 app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=app:app /app /app
WORKDIR /app
USER app
RUN mkdir -p /app/var/metrics
EXPOSE 8000
# gunicorn.conf.py binds 0.0.0.0:$PORT (8000 unless PORT is set).
CMD ["gunicorn", "wxplatform.wsgi:application", "--workers", "3", "--access-logfile", "-"]
