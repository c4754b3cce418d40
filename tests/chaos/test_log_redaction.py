"""No log path carries an authorization code or a token from a URL, and every line carries the request id
the client was given (issue 18, Medium 2 and Low 2): the gunicorn access log, Django's own django.request
records (their `request` extra is the whole URL), and the Celery workers' logging."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.chaos.harness import ApiServer, wait_for
from tests.factories import make_tenant
from tests.fixtures.worker import Worker
from wxplatform.core.observability import request_id_var

SECRET = "queryauthcode@@@secret-never-logged"


def _json_handler() -> logging.Handler:
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "name", "") == "default")
    return handler


@pytest.mark.django_db
def test_django_request_records_are_redacted_and_carry_the_response_request_id(client: Any, caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(f"/wechat/authorize/callback?auth_code={SECRET}&access_token=tok-secret")

    assert response.status_code in (400, 502)
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records, "django.request logged nothing"
    handler = _json_handler()
    for record in records:
        handler.filter(record)
        line = json.loads(handler.format(record))
        assert SECRET not in json.dumps(line) and "tok-secret" not in json.dumps(line)
        assert "auth_code=***" in line["request"]
        assert line["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db(transaction=True)
def test_the_gunicorn_access_log_has_no_query_strings(api_server_factory: Callable[..., ApiServer]) -> None:
    server = api_server_factory(args=("--access-logfile", "-"), workers=1, threads=2)

    answer = requests.get(f"{server.url}/wechat/authorize/callback?auth_code={SECRET}", timeout=30)

    # The application's own JSON line names the path too, and comes first: wait for gunicorn's.
    wait_for(lambda: '"GET /wechat/authorize/callback' in server.output(), timeout=10, what="the access log line")
    log = server.output()
    assert SECRET not in log
    access = next(line for line in log.splitlines() if '"GET /wechat/authorize/callback' in line)
    assert "?" not in access and access.endswith(answer.headers["X-Request-ID"])


@pytest.mark.django_db(transaction=True)
def test_workers_log_json_lines_with_the_request_id_that_caused_the_task(worker_factory: Callable[..., Worker]) -> None:
    from tenants.tasks import refresh_token

    tenant = make_tenant(status="revoked")
    worker = worker_factory()
    token = request_id_var.set("rid-from-the-request-1")
    try:
        refresh_token.apply_async(args=[tenant.pk])
    finally:
        request_id_var.reset(token)

    wait_for(lambda: "token refresh skipped" in worker.output(), timeout=30, what="the task's log line")
    lines = [line for line in worker.output().splitlines() if line.startswith("{")]
    skipped = next(json.loads(line) for line in lines if "token refresh skipped" in line)
    assert skipped["request_id"] == "rid-from-the-request-1"
    assert skipped["logger"] == "tenants.tasks"
    # Celery's own lines go through the same handler (JSON), not its plain-text one.
    assert any(json.loads(line)["logger"].startswith("celery") for line in lines)


# Keys a client may put in a query string (issue 28, finding 6): refused, and never written down.
QUERY_KEYS = {
    "/metrics?token=": "scrape-token-in-the-url",
    "/api/v1/tenant?api_key=": "merchant-key-in-the-url",
    "/internal/v1/components/wx0000sandbox0comp/token?key=": "service-key-in-the-url",
    "/api/v1/draft-count?access_key=": "another-key-in-the-url",
    "/admin/?session=": "a-session-in-the-url",
}


@pytest.mark.django_db(transaction=True)
def test_keys_in_query_strings_reach_no_log_line(api_server_factory: Callable[..., ApiServer]) -> None:
    server = api_server_factory(args=("--access-logfile", "-"), workers=1, threads=2)

    answers = [
        requests.get(f"{server.url}{prefix}{secret}&since=2026", timeout=30, allow_redirects=False)
        for prefix, secret in QUERY_KEYS.items()
    ]

    assert [a.status_code for a in answers] == [404, 401, 401, 401, 302]  # /metrics: no METRICS_TOKEN here
    last = answers[-2].headers["X-Request-ID"]
    wait_for(lambda: last in server.output(), timeout=10, what="the log lines of the last request")
    log = server.output()
    for secret in QUERY_KEYS.values():
        assert secret not in log
    # The lines are there, masked: django.request's warnings carry the URL with the key's value replaced.
    warnings = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"django.request"' in line]
    assert {w["request"] for w in warnings} >= {
        "<WSGIRequest: GET '/metrics?token=***&since=2026'>",
        "<WSGIRequest: GET '/api/v1/tenant?api_key=***&since=2026'>",
        "<WSGIRequest: GET '/internal/v1/components/wx0000sandbox0comp/token?key=***&since=2026'>",
    }


@pytest.mark.django_db(transaction=True)
def test_the_access_log_escapes_what_the_client_chose_so_no_line_is_forged(
    api_server_factory: Callable[..., ApiServer],
) -> None:
    # Issue 28, finding 7: gunicorn writes the decoded path; %0a started a line of the client's choosing and %00
    # made the file binary.
    server = api_server_factory(args=("--access-logfile", "-"), workers=1, threads=2)
    forged = '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /admin/ HTTP/1.1" 200'

    answer = requests.get(
        f"{server.url}/wechat/x%0d%0a{requests.utils.quote(forged)}%00%22%5C%e4%b8%ad",
        headers={"User-Agent": 'agent" \\ \x7f'},
        timeout=30,
    )

    assert answer.status_code == 404
    rid = answer.headers["X-Request-ID"]
    wait_for(lambda: any(line.endswith(rid) for line in server.output().splitlines()), timeout=10, what="access line")
    raw = server.log.read_bytes()
    assert b"\x00" not in raw and b"\r" not in raw
    lines = raw.decode().splitlines()
    assert not any(line.startswith("127.0.0.1 - - [01/Jan/2026") for line in lines)
    [access] = [line for line in lines if line.endswith(rid) and '"GET /wechat/' in line]
    assert '"GET /wechat/x\\x0d\\x0a127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \\x22GET /admin/ HTTP/1.1\\x22 200' in (
        access
    )
    assert "\\x00\\x22\\x5c\\u4e2d HTTP/1.1" in access
    assert '"agent\\x22 \\x5c \\x7f"' in access
