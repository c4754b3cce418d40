"""WXBizMsgCrypt compatibility: every vector of docs/wechat/crypto.md#test-vectors, the failure kinds, and hostile
XML."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from wxplatform.wechat.crypto import (
    AppIdMismatchError,
    Base64DecodeError,
    CryptoError,
    DecryptError,
    EncryptError,
    IllegalBufferError,
    InvalidAESKeyError,
    MessageCrypto,
    SignatureError,
    XMLParseError,
    build_xml,
    parse_xml,
)

SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

# V1: Tencent's official Sample.py.
V1_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9"
    "FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3y"
    "t+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v"
    "6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
V1_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n"
    "<MsgId>6054768590064713728</MsgId>\n"
    "</xml>"
)

# V3: EasyWeChat's EncryptorTest.
V3_ENCRYPT = (
    "rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgrkTqdFPwnhqbk+kIQ7"
    "rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0BtIu1pW9TjhOYrLQoU18nWYjWqDA1ynkmO"
    "ytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBkC1U85oy0ktOY"
    "4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRUwPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q739o4c8t9QGPe31G"
    "T2Go/rOz1BsrASwvauNulCh+++yz+CQzBIuikA=="
)
V3_PLAINTEXT = (
    "<xml><URL><![CDATA[http://wechat.laravel.so/server]]></URL><ToUserName><![CDATA[asdasdasd]]></ToUserName>"
    "<FromUserName><![CDATA[asdasdasdsadasd]]></FromUserName><CreateTime>1234567898</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>12345</MsgId></xml>"
)

# V4: wechatpy's tests/test_crypto.py (WeCom flavour: the appid slot holds a corp id).
V4_TOKEN = "123456"
V4_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
V4_ID = "wx49f0ab532d5d035a"
V4_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymz"
    "xh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIi"
    "OAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvc"
    "cTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
V4_REPLY = (
    "<xml>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
    "<ToUserName><![CDATA[messense]]></ToUserName>\n"
    "<AgentID>1</AgentID>\n"
    "<CreateTime>1411525903</CreateTime>\n"
    "</xml>"
)
V4_REPLY_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtOb"
    "vesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8"
    "NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O"
    "5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)
V4_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="

# D1/D2: component_verify_ticket pushes derived for this project.
D_APPID = "wxb11529c136998cb6"
D_TIMESTAMP = "1413192605"
D_NONCE = "1320562132"
D_RANDOM = b"0123456789abcdef"
D1_PLAINTEXT = (
    "<xml><AppId><![CDATA[wxb11529c136998cb6]]></AppId><CreateTime>1413192605</CreateTime>"
    "<InfoType><![CDATA[component_verify_ticket]]></InfoType>"
    "<ComponentVerifyTicket><![CDATA[ticket@@@test-ticket-value]]></ComponentVerifyTicket></xml>"
)
D1_ENCRYPT = (
    "Q3stYC6hdFzMh9T8HCvyDKb6hlk6EhYdsSIhyH5jhcEPW5MiOC38BhPkKT9FqrKPtEHyezcKqGgt1XomopRkZUhjFvdCygLd/plHPpI/oUR+"
    "6PG75mC0y0RNZQk/nHi6HuA1UdYQKM0D+M1WMEPZgHcFE8Doytery1B6ZaYL1a2EvL1MMzfr3EaaptOuqIQ8VsG2sb4lAkAI/xZwMDSG6sIb"
    "SCnYpDbz285RsS5GbrH83/LL+ceyfTP/nyzpI1LDW+79Nh8N3mk+mHBGNJaHzETjex8yEdmpWJjVQPQQ4nFlRbC/F8K2c81MmJ7pl7QwhC3p"
    "HhCTT1ARvf9Ckg5DVQMwepFZtWrJhPMD/ohZhoFCy3uX0NGjVUBVDtLJMwHV"
)
D2_PLAINTEXT = D1_PLAINTEXT.replace("ticket@@@test-ticket-value", "ticket@@@test-ticket-value" + "x" * 18)
D2_ENCRYPT = (
    "Q3stYC6hdFzMh9T8HCvyDHccHcfT5/+I5D64dZY0zlnVAGnt8KdyD8/lp8wmX0qLMxFDbfJmrM9FbFPJvEmzIoAxf6e1HheWtx5Cf3/miPEd"
    "NmSiy15IpBC1pVGdHUssinKA+YAG39ql5FROCD+GC6M4Inb+0FnP+6Qg+QUv53AVRmiEIH9hpzJ7/f24BeTUZAMJFZUJ9+XfL2E0YtbP3nCY"
    "XCwS0VLozKN8+1Y9z96h1XpK/Gt/r7oxnYEaHmo3ST2nCj/n2Ki/MArwQnvHIm1CF9Vvsbrp9gRr7VMYS7bakIIZMq7GkdG06oplvnC9L9vK"
    "3+Ui09B39qwgZ7J+tIumUUrU0SOJP+dHVJDhZ3UpA89Llsh5IXlBPAHpbAEq6ZRBnlijWtXjHVTO9ulo3M65DTPGkpoNqey0YVpxCdE="
)


def d_crypto() -> MessageCrypto:
    return MessageCrypto("pamtest", SAMPLE_KEY, D_APPID)


def aes_raw(key: str, buffer: bytes, *, decrypt: bool = False) -> bytes:
    """AES-256-CBC with IV = key[:16] and no padding: lets tests forge buffers the crypto itself never makes."""
    raw_key = base64.b64decode(key + "=")
    cipher = Cipher(algorithms.AES(raw_key), modes.CBC(raw_key[:16]))
    context = cipher.decryptor() if decrypt else cipher.encryptor()
    return context.update(buffer) + context.finalize()


def forged(buffer: bytes) -> str:
    return base64.b64encode(aes_raw(SAMPLE_KEY, buffer)).decode()


def envelope(encrypt: str, **extra: str) -> str:
    return build_xml({**extra, "Encrypt": encrypt})


# --- test vectors (docs/wechat/crypto.md#test-vectors) ----------------------------------------------------


def test_v1_tencent_sample_decrypts_with_its_msg_signature() -> None:
    crypto = MessageCrypto("spamtest", SAMPLE_KEY, "wx2c2769f8efd9abc2")
    body = envelope(V1_ENCRYPT, ToUserName="gh_10f6c3c3ac5a")

    plaintext = crypto.decrypt_message(
        body, msg_signature="5d197aaffba7e9b25a30732f161a50dee96bd5fa", timestamp="1409735669", nonce="1320562132"
    )

    assert plaintext == V1_PLAINTEXT


def test_v1_plain_signature_is_the_signature_over_an_empty_encrypt() -> None:
    crypto = MessageCrypto("spamtest", SAMPLE_KEY, "wx2c2769f8efd9abc2")

    assert crypto.signature("1409735669", "1320562132", "") == "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
    crypto.verify_signature("16120ec1b8dbb870f510d87ce6bc2463eae6ca1a", timestamp="1409735669", nonce="1320562132")


def test_v1_encrypt_with_the_sample_random_prefix_reproduces_the_sample_ciphertext() -> None:
    crypto = MessageCrypto("spamtest", SAMPLE_KEY, "wx2c2769f8efd9abc2")

    assert crypto.encrypt(V1_PLAINTEXT, random_prefix=b"89465c840c5f116f") == V1_ENCRYPT


def test_v2_deterministic_encrypt_of_utf8_text_matches_tencent_java_sample() -> None:
    crypto = MessageCrypto("pamtest", SAMPLE_KEY, "wxb11529c136998cb6")

    encrypted, msg_signature = crypto.encrypt_message(
        "我是中文abcd123", timestamp="1409304348", nonce="xxxxxx", random_prefix=b"aaaabbbbccccdddd"
    )

    assert encrypted == "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    assert msg_signature == "82c962d39941aa48552f90ef55aa323dc620cc10"
    assert crypto.decrypt(encrypted) == "我是中文abcd123"


def test_v3_easywechat_message_decrypts() -> None:
    crypto = MessageCrypto("pamtest", SAMPLE_KEY, "wxb11529c136998cb6")

    plaintext = crypto.decrypt_message(
        envelope(V3_ENCRYPT),
        msg_signature="4f3ad57b6989f09f4eb392acce4f9e93942ed890",
        timestamp="1458300676",
        nonce="260774613",
    )

    assert plaintext == V3_PLAINTEXT


def test_v3_message_is_rejected_by_a_receiver_with_another_appid() -> None:
    crypto = MessageCrypto("pamtest", SAMPLE_KEY, "invalid appid")

    with pytest.raises(AppIdMismatchError):
        crypto.decrypt_message(
            envelope(V3_ENCRYPT),
            msg_signature="4f3ad57b6989f09f4eb392acce4f9e93942ed890",
            timestamp="1458300676",
            nonce="260774613",
        )


def test_v3_message_is_rejected_with_a_wrong_signature() -> None:
    crypto = MessageCrypto("pamtest", SAMPLE_KEY, "wxb11529c136998cb6")

    with pytest.raises(SignatureError):
        crypto.decrypt_message(
            envelope(V3_ENCRYPT),
            msg_signature="4f3ad57b6989f09f4eb392acce4f9e93942ed891",
            timestamp="1458300676",
            nonce="260774613",
        )


def test_v4_wechatpy_message_decrypts_from_its_exact_multiline_body() -> None:
    crypto = MessageCrypto(V4_TOKEN, V4_KEY, V4_ID)
    body = (
        "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n"
        f"<Encrypt><![CDATA[{V4_ENCRYPT}]]></Encrypt>\n"
        "<AgentID><![CDATA[1]]></AgentID>\n"
        "</xml>"
    ).encode()

    plaintext = crypto.decrypt_message(
        body, msg_signature="74d92dfeb87ba7c714f89d98870ae5eb62dff26d", timestamp="1411525903", nonce="461056294"
    )

    fields = parse_xml(plaintext)
    assert fields["Content"] == "test"
    assert fields["FromUserName"] == "messense"
    assert fields["MsgId"] == "4363689963896700987"


def test_v4_encrypt_message_matches_wechatpy_reply() -> None:
    crypto = MessageCrypto(V4_TOKEN, V4_KEY, V4_ID)

    encrypted, msg_signature = crypto.encrypt_message(
        V4_REPLY, timestamp="1411525903", nonce="461056294", random_prefix=b"1234567890123456"
    )

    assert encrypted == V4_REPLY_ENCRYPT
    assert msg_signature == "407518b7649e86ef23978113f92d27afa9296533"


def test_v4_url_verification_signs_and_decrypts_the_echostr() -> None:
    crypto = MessageCrypto(V4_TOKEN, V4_KEY, V4_ID)

    crypto.verify_signature(
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", timestamp="1411443780", nonce="437374425", encrypt=V4_ECHOSTR
    )
    assert crypto.decrypt(V4_ECHOSTR) == "5927782489442352469"


def test_v4_url_verification_fails_for_another_nonce() -> None:
    crypto = MessageCrypto(V4_TOKEN, V4_KEY, V4_ID)

    with pytest.raises(SignatureError):
        crypto.verify_signature(
            "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", timestamp="1411443780", nonce="437374424", encrypt=V4_ECHOSTR
        )


def test_d1_ticket_push_encrypts_to_the_project_vector() -> None:
    encrypted, msg_signature = d_crypto().encrypt_message(
        D1_PLAINTEXT, timestamp=D_TIMESTAMP, nonce=D_NONCE, random_prefix=D_RANDOM
    )

    assert encrypted == D1_ENCRYPT
    assert msg_signature == "926e6ca590892200d2ac639774d917eef0f4b009"


def test_d1_ticket_push_body_decrypts_to_the_ticket() -> None:
    body = envelope(D1_ENCRYPT, AppId=D_APPID)

    plaintext = d_crypto().decrypt_message(
        body, msg_signature="926e6ca590892200d2ac639774d917eef0f4b009", timestamp=D_TIMESTAMP, nonce=D_NONCE
    )

    assert plaintext == D1_PLAINTEXT
    assert parse_xml(plaintext) == {
        "AppId": "wxb11529c136998cb6",
        "CreateTime": "1413192605",
        "InfoType": "component_verify_ticket",
        "ComponentVerifyTicket": "ticket@@@test-ticket-value",
    }


def test_d1_push_query_signature_is_the_plain_signature() -> None:
    assert d_crypto().signature(D_TIMESTAMP, D_NONCE, "") == "bafb94c8b6d2c6a13565d242eb8945748ff7a041"


def test_d2_aligned_message_gets_a_full_block_of_padding_and_round_trips() -> None:
    crypto = d_crypto()

    encrypted, msg_signature = crypto.encrypt_message(
        D2_PLAINTEXT, timestamp=D_TIMESTAMP, nonce=D_NONCE, random_prefix=D_RANDOM
    )

    assert encrypted == D2_ENCRYPT
    assert msg_signature == "51fbe56c228781e7bf168a5d19a1aa9334e99823"
    assert aes_raw(SAMPLE_KEY, base64.b64decode(encrypted), decrypt=True)[-33:] == b"6" + b"\x20" * 32
    assert (
        crypto.decrypt_message(
            envelope(D2_ENCRYPT, AppId=D_APPID), msg_signature=msg_signature, timestamp=D_TIMESTAMP, nonce=D_NONCE
        )
        == D2_PLAINTEXT
    )


# --- failure kinds -----------------------------------------------------------------------------------


def test_error_codes_match_tencent_sample_code() -> None:
    assert SignatureError.code == -40001
    assert XMLParseError.code == -40002
    assert InvalidAESKeyError.code == -40004
    assert AppIdMismatchError.code == -40005
    assert EncryptError.code == -40006
    assert DecryptError.code == -40007
    assert IllegalBufferError.code == -40008
    assert Base64DecodeError.code == -40010


def test_signature_is_checked_before_the_payload_is_touched() -> None:
    body = envelope("%%% not base64 %%%", AppId=D_APPID)

    with pytest.raises(SignatureError):
        d_crypto().decrypt_message(body, msg_signature="0" * 40, timestamp=D_TIMESTAMP, nonce=D_NONCE)


def test_wrong_signature_on_a_valid_push_is_rejected() -> None:
    body = envelope(D1_ENCRYPT, AppId=D_APPID)

    with pytest.raises(SignatureError):
        d_crypto().decrypt_message(
            body, msg_signature="926e6ca590892200d2ac639774d917eef0f4b009", timestamp="1413192606", nonce=D_NONCE
        )


def test_push_for_another_appid_is_rejected() -> None:
    crypto = MessageCrypto("pamtest", SAMPLE_KEY, "wx0000000000000000")

    with pytest.raises(AppIdMismatchError):
        crypto.decrypt(D1_ENCRYPT)


def test_push_encrypted_with_another_key_fails_as_a_typed_error() -> None:
    crypto = MessageCrypto("pamtest", "B" * 43, D_APPID)

    with pytest.raises(IllegalBufferError):
        crypto.decrypt(D1_ENCRYPT)


def test_ciphertext_truncated_by_one_key_block_loses_its_padding() -> None:
    truncated = base64.b64encode(base64.b64decode(D1_ENCRYPT)[:-32]).decode()

    with pytest.raises(IllegalBufferError, match="invalid padding"):
        d_crypto().decrypt(truncated)


def test_ciphertext_not_a_multiple_of_32_bytes_is_rejected() -> None:
    truncated = base64.b64encode(base64.b64decode(D1_ENCRYPT)[:-16]).decode()

    with pytest.raises(DecryptError, match="not a positive multiple of 32"):
        d_crypto().decrypt(truncated)


def test_empty_ciphertext_is_rejected() -> None:
    with pytest.raises(DecryptError):
        d_crypto().decrypt("")


@pytest.mark.parametrize("encrypt", ["abc", "@@@@", "QUJD\x00", "ZmFrZQ==ZmFrZQ==", "中文"])
def test_bad_base64_is_a_base64_decode_error(encrypt: str) -> None:
    with pytest.raises(Base64DecodeError) as caught:
        d_crypto().decrypt(encrypt)

    assert caught.value.code == -40010


def test_line_broken_base64_is_accepted() -> None:
    wrapped = "\n".join(D1_ENCRYPT[i : i + 76] for i in range(0, len(D1_ENCRYPT), 76))

    assert d_crypto().decrypt(wrapped) == D1_PLAINTEXT


def padded(body: bytes) -> bytes:
    pad = 32 - len(body) % 32
    return body + bytes([pad]) * pad


MINIMAL_BUFFER = padded(D_RANDOM + struct.pack(">I", 4) + b"<a/>" + D_APPID.encode())


def test_forged_minimal_buffer_is_accepted_so_the_forgeries_below_fail_for_their_one_defect() -> None:
    assert d_crypto().decrypt(forged(MINIMAL_BUFFER)) == "<a/>"


@pytest.mark.parametrize("pad", [0, 33])
def test_pad_byte_outside_1_to_32_is_an_illegal_buffer(pad: int) -> None:
    buffer = MINIMAL_BUFFER[:-1] + bytes([pad])

    with pytest.raises(IllegalBufferError, match="invalid padding"):
        d_crypto().decrypt(forged(buffer))


def test_inconsistent_pad_bytes_are_an_illegal_buffer() -> None:
    buffer = MINIMAL_BUFFER[:-3] + b"\x00" + MINIMAL_BUFFER[-2:]

    with pytest.raises(IllegalBufferError, match="invalid padding"):
        d_crypto().decrypt(forged(buffer))


def test_message_length_beyond_the_buffer_is_an_illegal_buffer() -> None:
    buffer = padded(D_RANDOM + struct.pack(">I", 1000) + b"<a/>" + D_APPID.encode())

    with pytest.raises(IllegalBufferError, match="exceeds buffer"):
        d_crypto().decrypt(forged(buffer))


def test_buffer_shorter_than_its_header_is_an_illegal_buffer() -> None:
    with pytest.raises(IllegalBufferError, match="header"):
        d_crypto().decrypt(forged(padded(b"0123456789")))


def test_message_that_is_not_utf8_is_an_illegal_buffer() -> None:
    buffer = padded(D_RANDOM + struct.pack(">I", 2) + b"\xff\xfe" + D_APPID.encode())

    with pytest.raises(IllegalBufferError, match="UTF-8"):
        d_crypto().decrypt(forged(buffer))


@pytest.mark.parametrize(
    "key",
    [
        SAMPLE_KEY[:-1],
        SAMPLE_KEY + "H",
        "",
        SAMPLE_KEY[:-1] + "+",
        SAMPLE_KEY[:-1] + "=",
        SAMPLE_KEY[:-1] + "é",
    ],
)
def test_encoding_aes_key_must_be_43_alphanumerics(key: str) -> None:
    with pytest.raises(InvalidAESKeyError) as caught:
        MessageCrypto("pamtest", key, D_APPID)

    assert caught.value.code == -40004


def test_random_prefix_must_be_16_bytes() -> None:
    with pytest.raises(EncryptError):
        d_crypto().encrypt("<xml/>", random_prefix=b"short")


def test_encrypt_draws_a_fresh_random_prefix_each_time() -> None:
    crypto = d_crypto()

    first, second = crypto.encrypt(D1_PLAINTEXT), crypto.encrypt(D1_PLAINTEXT)

    assert first != second
    assert crypto.decrypt(first) == crypto.decrypt(second) == D1_PLAINTEXT


def test_push_without_an_encrypt_element_is_an_xml_parse_error() -> None:
    with pytest.raises(XMLParseError, match="no Encrypt"):
        d_crypto().decrypt_message(
            build_xml({"AppId": D_APPID}), msg_signature="x", timestamp=D_TIMESTAMP, nonce=D_NONCE
        )


def test_repr_shows_no_token_or_key() -> None:
    text = repr(MessageCrypto("secret-token", SAMPLE_KEY, D_APPID))

    assert text == "MessageCrypto(appid='wxb11529c136998cb6')"


# --- XML ---------------------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><Encrypt>&lol9;</Encrypt></xml>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><Encrypt>&xxe;</Encrypt></xml>"""


def test_parse_xml_reads_cdata_and_bare_values_of_a_multiline_document() -> None:
    text = "<xml>\n  <AppId><![CDATA[wx1]]></AppId>\n  <CreateTime>1413192605</CreateTime>\n  <Empty/>\n</xml>"

    assert parse_xml(text) == {"AppId": "wx1", "CreateTime": "1413192605", "Empty": ""}


def test_parse_xml_accepts_bytes_with_a_declaration() -> None:
    body = '<?xml version="1.0" encoding="utf-8"?><xml><Content><![CDATA[中文]]></Content></xml>'.encode()

    assert parse_xml(body) == {"Content": "中文"}


def test_parse_xml_ignores_nested_elements_beyond_the_first_level() -> None:
    text = "<xml><MsgType>event</MsgType><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo></xml>"

    assert parse_xml(text) == {"MsgType": "event", "ScanCodeInfo": ""}


def test_billion_laughs_is_rejected() -> None:
    with pytest.raises(XMLParseError, match="forbidden"):
        parse_xml(BILLION_LAUGHS)


def test_external_entity_is_rejected() -> None:
    with pytest.raises(XMLParseError, match="forbidden"):
        parse_xml(EXTERNAL_ENTITY)


def test_xml_bomb_in_a_push_is_rejected_before_any_signature_work() -> None:
    with pytest.raises(XMLParseError):
        d_crypto().decrypt_message(BILLION_LAUGHS, msg_signature="x", timestamp=D_TIMESTAMP, nonce=D_NONCE)


def test_doctype_without_entities_is_rejected() -> None:
    with pytest.raises(XMLParseError, match="forbidden"):
        parse_xml("<!DOCTYPE xml><xml><A>1</A></xml>")


def test_root_other_than_xml_is_rejected() -> None:
    with pytest.raises(XMLParseError, match="root element"):
        parse_xml("<root><A>1</A></root>")


def test_deep_nesting_is_rejected() -> None:
    with pytest.raises(XMLParseError, match="too deeply"):
        parse_xml("<xml>" + "<a>" * 50 + "</a>" * 50 + "</xml>")


def test_duplicate_fields_are_rejected() -> None:
    with pytest.raises(XMLParseError, match="duplicate"):
        parse_xml("<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>")


@pytest.mark.parametrize(
    "text", ["", "not xml", "<xml>", "<xml></xml><xml></xml>", b"\xff\xfe\x00<", "<xml>&amp</xml>"]
)
def test_malformed_xml_is_an_xml_parse_error(text: str | bytes) -> None:
    with pytest.raises(XMLParseError):
        parse_xml(text)


def test_build_xml_wraps_strings_in_cdata_and_leaves_ints_bare() -> None:
    assert build_xml({"AppId": "wx1", "CreateTime": 1413192605}) == (
        "<xml><AppId><![CDATA[wx1]]></AppId><CreateTime>1413192605</CreateTime></xml>"
    )


def test_build_xml_splits_a_cdata_terminator_inside_a_value() -> None:
    text = build_xml({"Content": "a]]>b"})

    assert text == "<xml><Content><![CDATA[a]]]]><![CDATA[>b]]></Content></xml>"
    assert parse_xml(text) == {"Content": "a]]>b"}


def test_build_xml_refuses_a_tag_that_would_inject_markup() -> None:
    with pytest.raises(ValueError, match="invalid XML tag"):
        build_xml({"A><B": "x"})


def test_build_xml_refuses_characters_xml_cannot_carry() -> None:
    with pytest.raises(ValueError, match="cannot carry"):
        build_xml({"A": "nul\x00"})


def test_build_xml_refuses_bool_values() -> None:
    with pytest.raises(TypeError):
        build_xml({"A": True})


# --- properties --------------------------------------------------------------------------------------

appids = st.text(min_size=0, max_size=40)
xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"))


@given(plaintext=st.text(), appid=appids, prefix=st.binary(min_size=16, max_size=16))
def test_encrypt_then_decrypt_returns_any_text_for_any_appid(plaintext: str, appid: str, prefix: bytes) -> None:
    crypto = MessageCrypto("token", SAMPLE_KEY, appid)

    assert crypto.decrypt(crypto.encrypt(plaintext, random_prefix=prefix)) == plaintext


@given(plaintext=st.text(), timestamp=st.from_regex(r"\d{10}", fullmatch=True), nonce=st.text(min_size=1))
def test_encrypt_message_then_decrypt_message_round_trips(plaintext: str, timestamp: str, nonce: str) -> None:
    crypto = d_crypto()
    encrypted, msg_signature = crypto.encrypt_message(plaintext, timestamp=timestamp, nonce=nonce)

    body = envelope(encrypted, AppId=D_APPID).encode()

    assert crypto.decrypt_message(body, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce) == plaintext


@given(fields=st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True), xml_text, max_size=8))
def test_build_xml_then_parse_xml_round_trips(fields: dict[str, str]) -> None:
    assert parse_xml(build_xml(dict(fields))) == fields


@given(body=st.one_of(st.binary(), st.text()), msg_signature=st.text(), nonce=st.text())
def test_random_bodies_only_ever_raise_crypto_errors(body: bytes | str, msg_signature: str, nonce: str) -> None:
    with pytest.raises(CryptoError):
        d_crypto().decrypt_message(body, msg_signature=msg_signature, timestamp=D_TIMESTAMP, nonce=nonce)


@given(ciphertext=st.binary(max_size=256))
def test_random_ciphertext_with_a_valid_signature_only_ever_raises_crypto_errors(ciphertext: bytes) -> None:
    crypto = d_crypto()
    encrypted = base64.b64encode(ciphertext).decode()
    msg_signature = crypto.signature(D_TIMESTAMP, D_NONCE, encrypted)

    with pytest.raises(CryptoError):
        crypto.decrypt_message(
            envelope(encrypted, AppId=D_APPID), msg_signature=msg_signature, timestamp=D_TIMESTAMP, nonce=D_NONCE
        )


@given(encrypt=st.text())
def test_random_text_into_decrypt_only_ever_raises_crypto_errors(encrypt: str) -> None:
    with pytest.raises(CryptoError):
        d_crypto().decrypt(encrypt)


@given(text=st.one_of(st.binary(), st.text()))
def test_parse_xml_of_random_input_returns_fields_or_raises_xml_parse_error(text: bytes | str) -> None:
    try:
        fields = parse_xml(text)
    except XMLParseError:
        return
    assert isinstance(fields, dict)


def test_lone_surrogates_in_body_or_signature_are_typed_errors() -> None:
    with pytest.raises(XMLParseError):
        parse_xml("<xml><A>\ud800</A></xml>")
    with pytest.raises(SignatureError):
        d_crypto().decrypt_message(
            envelope(D1_ENCRYPT, AppId=D_APPID), msg_signature="\udcff", timestamp=D_TIMESTAMP, nonce=D_NONCE
        )
    with pytest.raises(SignatureError):
        d_crypto().decrypt_message(
            envelope(D1_ENCRYPT, AppId=D_APPID), msg_signature="0" * 40, timestamp=D_TIMESTAMP, nonce="\ud800"
        )
