"""parse_body: the single classification of a WeChat HTTP answer (docs/wechat/errors.md)."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxplatform.wechat.errors import (
    AccountStateError,
    AuthorizationCodeError,
    ConfigurationError,
    QuotaError,
    RefreshTokenError,
    RetryableError,
    TicketError,
    TokenError,
    TransportError,
    UnknownError,
    WeChatError,
)
from wxplatform.wechat.http import parse_body


def body(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def test_success_without_errcode_is_returned_as_is() -> None:
    assert parse_body(200, b'{"total_count": 15}') == {"total_count": 15}


def test_success_with_errcode_zero_is_returned_as_is() -> None:
    data = {"errcode": 0, "errmsg": "ok", "quota": {"daily_limit": 1000, "used": 1, "remain": 999}}

    assert parse_body(200, body(data)) == data


@pytest.mark.parametrize(
    ("errcode", "kind"),
    [
        (-1, RetryableError),
        (45011, RetryableError),
        (40001, TokenError),
        (40014, TokenError),
        (42001, TokenError),
        (48001, AccountStateError),
        (50001, AccountStateError),
        (50002, AccountStateError),
        (61003, AccountStateError),
        (61007, AccountStateError),
        (45009, QuotaError),
        (61004, ConfigurationError),
        (40164, ConfigurationError),
        (40125, ConfigurationError),
        (61011, ConfigurationError),
        (40013, ConfigurationError),
        (61005, TicketError),
        (61006, TicketError),
        (61023, RefreshTokenError),
        (61009, AuthorizationCodeError),
        (61010, AuthorizationCodeError),
        (76021, UnknownError),
    ],
)
def test_nonzero_errcode_becomes_its_typed_error(errcode: int, kind: type[WeChatError]) -> None:
    with pytest.raises(WeChatError) as caught:
        parse_body(200, body({"errcode": errcode, "errmsg": "whatever"}))

    assert type(caught.value) is kind
    assert caught.value.errcode == errcode


def test_errmsg_is_kept_verbatim_with_its_rid() -> None:
    errmsg = "access_token expired rid: 64f69b23-0e1f6a2b-5c8d7e3f"

    with pytest.raises(TokenError) as caught:
        parse_body(200, body({"errcode": 42001, "errmsg": errmsg}))

    assert caught.value.errmsg == errmsg
    assert str(caught.value) == f"WeChat error 42001: {errmsg}"


def test_missing_errmsg_is_empty() -> None:
    with pytest.raises(QuotaError) as caught:
        parse_body(200, b'{"errcode": 45009}')

    assert caught.value.errmsg == ""


def test_errcode_in_a_4xx_answer_still_decides_the_kind() -> None:
    with pytest.raises(TokenError):
        parse_body(403, body({"errcode": 40001, "errmsg": "invalid credential"}))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_a_transport_error_even_with_an_errcode_body(status: int) -> None:
    with pytest.raises(TransportError) as caught:
        parse_body(status, body({"errcode": 40001, "errmsg": "invalid credential"}))

    assert caught.value.status == status
    assert caught.value.errmsg == f"HTTP {status}"
    assert caught.value.errcode is None
    assert caught.value.retryable is True


@pytest.mark.parametrize("status", [301, 404, 429])
def test_other_non_200_status_without_errcode_is_a_transport_error(status: int) -> None:
    with pytest.raises(TransportError) as caught:
        parse_body(status, b'{"message": "not here"}')

    assert caught.value.status == status
    assert caught.value.errmsg == f"HTTP {status}"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b'{"total_count": 15',
        b"[1, 2]",
        b'"ok"',
        b"null",
        b"\xff\xfe\xfa",
        b'{"errcode": "40001", "errmsg": "a string errcode"}',
        b'{"errcode": true}',
        b'{"errcode": null}',
        b'{"errcode": 4.0e4}',
    ],
)
def test_body_that_is_not_a_json_object_with_an_integer_errcode_is_malformed(raw: bytes) -> None:
    with pytest.raises(TransportError) as caught:
        parse_body(200, raw)

    assert caught.value.errmsg == "malformed body"
    assert caught.value.status == 200


def test_deeply_nested_json_is_malformed_not_a_recursion_error() -> None:
    with pytest.raises(TransportError, match="malformed body"):
        parse_body(200, b"[" * 100_000 + b"]" * 100_000)


json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text())
json_objects = st.dictionaries(st.sampled_from(["errcode", "errmsg", "total_count"]) | st.text(), json_values)


@given(status=st.integers(min_value=100, max_value=599), raw=st.binary() | json_objects.map(body))
def test_random_answers_give_a_dict_or_a_wechat_error(status: int, raw: bytes) -> None:
    try:
        data = parse_body(status, raw)
    except WeChatError:
        return
    assert status == 200
    assert isinstance(data, dict)


@pytest.mark.parametrize(
    ("errmsg", "rid"),
    [
        ("reach max api daily quota limit rid: 606d52e0-101a945b-1de9c138", "606d52e0-101a945b-1de9c138"),
        (
            "invalid credential, access_token is invalid or not latest rid: 5f7e1a2b-3c4d5e6f-7a8b9c0d",
            "5f7e1a2b-3c4d5e6f-7a8b9c0d",
        ),
        (
            "access clientip is not registered requestIP: 1.2.3.4 rid: 64f69b23-1a2b3c4d-5e6f7a8b",
            "64f69b23-1a2b3c4d-5e6f7a8b",
        ),
        ("system error", ""),
        ("rid: in the middle, not at the end", ""),
    ],
)
def test_the_rid_is_read_from_the_end_of_errmsg(errmsg: str, rid: str) -> None:
    with pytest.raises(WeChatError) as caught:
        parse_body(200, json.dumps({"errcode": 45009, "errmsg": errmsg}).encode())

    assert caught.value.rid == rid
    # It survives pickling (Celery, multiprocessing), like errcode and errmsg.
    assert pickle.loads(pickle.dumps(caught.value)).rid == rid  # noqa: S301 - our own object


def test_a_transport_failure_has_no_rid() -> None:
    with pytest.raises(TransportError) as caught:
        parse_body(502, b"rid: 606d52e0-101a945b-1de9c138")

    assert caught.value.rid == ""
