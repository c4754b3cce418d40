"""WXBizMsgCrypt-compatible message signature and AES, plus the flat `<xml>` envelope WeChat pushes.

Algorithm: docs/wechat/crypto.md; vectors: docs/wechat/crypto.md#test-vectors. Every failure is a `CryptoError` subclass
carrying
the error code of Tencent's sample code, so the event receiver can log one code and answer without a traceback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Mapping
from typing import ClassVar
from xml.etree.ElementTree import ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

__all__ = [
    "AppIdMismatchError",
    "Base64DecodeError",
    "CryptoError",
    "DecryptError",
    "EncryptError",
    "IllegalBufferError",
    "InvalidAESKeyError",
    "MessageCrypto",
    "SignatureError",
    "XMLParseError",
    "build_xml",
    "parse_xml",
]


class CryptoError(Exception):
    """A push could not be verified, decrypted or parsed. `code` is the Tencent sample-code number."""

    code: ClassVar[int] = -40000


class SignatureError(CryptoError):
    code = -40001


class XMLParseError(CryptoError):
    code = -40002


class InvalidAESKeyError(CryptoError):
    code = -40004


class AppIdMismatchError(CryptoError):
    code = -40005


class EncryptError(CryptoError):
    code = -40006


class DecryptError(CryptoError):
    code = -40007


class IllegalBufferError(CryptoError):
    code = -40008


class Base64DecodeError(DecryptError):
    code = -40010


# WeChat pads to the 32-byte AES key length, not the 16-byte AES block (docs/wechat/crypto.md).
_BLOCK = 32
_RANDOM_LEN = 16
_HEADER_LEN = _RANDOM_LEN + 4
_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")
_WHITESPACE = str.maketrans("", "", " \t\r\n")


class MessageCrypto:
    """Signs, encrypts and decrypts messages for one (token, EncodingAESKey, appid) triple."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        if not isinstance(encoding_aes_key, str) or _KEY_RE.fullmatch(encoding_aes_key) is None:
            raise InvalidAESKeyError("EncodingAESKey must be 43 characters from [A-Za-z0-9]")
        self._token = token
        self._key = base64.b64decode(encoding_aes_key + "=")
        self._iv = self._key[:16]
        self._appid = appid
        self._appid_bytes = appid.encode("utf-8")

    def __repr__(self) -> str:
        return f"MessageCrypto(appid={self._appid!r})"

    @property
    def appid(self) -> str:
        return self._appid

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """msg_signature; with `encrypt=""` this is also the plain `signature` over (token, timestamp, nonce)."""
        parts = sorted([self._token, timestamp, nonce, encrypt])
        # surrogatepass: query strings are attacker-supplied, and a lone surrogate must fail the comparison,
        # not raise UnicodeEncodeError.
        joined = "".join(parts).encode("utf-8", "surrogatepass")
        return hashlib.sha1(joined).hexdigest()  # noqa: S324 - mandated by the protocol

    def verify_signature(self, signature: str, *, timestamp: str, nonce: str, encrypt: str = "") -> None:
        """Raise SignatureError unless `signature` matches, compared in constant time."""
        expected = self.signature(timestamp, nonce, encrypt).encode("ascii")
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass")):
            raise SignatureError("signature mismatch")

    def encrypt(self, plaintext: str, *, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of random(16) ‖ len(msg) big-endian ‖ msg ‖ appid, PKCS#7-padded to 32 bytes."""
        prefix = os.urandom(_RANDOM_LEN) if random_prefix is None else random_prefix
        if len(prefix) != _RANDOM_LEN:
            raise EncryptError(f"random prefix must be {_RANDOM_LEN} bytes")
        try:
            msg = plaintext.encode("utf-8")
            buffer = prefix + struct.pack(">I", len(msg)) + msg + self._appid_bytes
        except (UnicodeEncodeError, struct.error) as exc:
            raise EncryptError(f"cannot encode message: {type(exc).__name__}") from None
        pad = _BLOCK - len(buffer) % _BLOCK
        buffer += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).encryptor()
        return base64.b64encode(encryptor.update(buffer) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt: str) -> str:
        """The message inside `encrypt`, after checking padding, length and the trailing appid."""
        try:
            ciphertext = base64.b64decode(encrypt.translate(_WHITESPACE), validate=True)
        except (binascii.Error, ValueError):
            raise Base64DecodeError("Encrypt is not valid base64") from None
        if not ciphertext or len(ciphertext) % _BLOCK:
            raise DecryptError(f"ciphertext length {len(ciphertext)} is not a positive multiple of {_BLOCK}")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).decryptor()
        buffer = decryptor.update(ciphertext) + decryptor.finalize()

        # Tencent's samples trust the last byte blindly; a range and content check turns a wrong key or a
        # tampered message into a clean error instead of a slice of garbage.
        pad = buffer[-1]
        if not 1 <= pad <= _BLOCK or buffer[-pad:] != bytes([pad]) * pad:
            raise IllegalBufferError("invalid padding")
        content = buffer[:-pad]
        if len(content) < _HEADER_LEN:
            raise IllegalBufferError("buffer shorter than its header")
        (msg_len,) = struct.unpack(">I", content[_RANDOM_LEN:_HEADER_LEN])
        end = _HEADER_LEN + msg_len
        if end > len(content):
            raise IllegalBufferError("message length exceeds buffer")
        if not hmac.compare_digest(content[end:], self._appid_bytes):
            raise AppIdMismatchError("appid in message does not match")
        try:
            return content[_HEADER_LEN:end].decode("utf-8")
        except UnicodeDecodeError:
            raise IllegalBufferError("message is not UTF-8") from None

    def encrypt_message(
        self, xml: str, *, timestamp: str, nonce: str, random_prefix: bytes | None = None
    ) -> tuple[str, str]:
        """(Encrypt, msg_signature) for `xml`, ready for an outer envelope built with `build_xml`."""
        encrypted = self.encrypt(xml, random_prefix=random_prefix)
        return encrypted, self.signature(timestamp, nonce, encrypted)

    def decrypt_message(self, body: bytes | str, *, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Inner XML of a pushed `<xml>…<Encrypt>…</Encrypt></xml>` body; the signature is checked first."""
        encrypted = parse_xml(body).get("Encrypt")
        if encrypted is None:
            raise XMLParseError("no Encrypt element")
        self.verify_signature(msg_signature, timestamp=timestamp, nonce=nonce, encrypt=encrypted)
        return self.decrypt(encrypted)


# Deepest legitimate WeChat push (SendPicsInfo/PicList/item/PicMd5Sum) is 5 levels.
_MAX_DEPTH = 8


class _FlatXMLBuilder:
    """Parser target collecting the text of each direct child of `<xml>`; never builds a tree."""

    def __init__(self) -> None:
        self._depth = 0
        self._seen_root = False
        self._tag = ""
        self._text: list[str] = []
        self.fields: dict[str, str] = {}

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise XMLParseError("XML nested too deeply")
        if self._depth == 1:
            if tag != "xml":
                raise XMLParseError("root element is not <xml>")
            self._seen_root = True
        elif self._depth == 2:
            if tag in self.fields:
                raise XMLParseError(f"duplicate element <{tag}>")
            self._tag = tag
            self._text = []

    def data(self, data: str) -> None:
        if self._depth == 2:
            self._text.append(data)

    def end(self, tag: str) -> None:
        if self._depth == 2:
            self.fields[self._tag] = "".join(self._text)
        self._depth -= 1

    def close(self) -> dict[str, str]:
        if not self._seen_root:
            raise XMLParseError("no <xml> root element")
        return self.fields


def parse_xml(text: str | bytes) -> dict[str, str]:
    """Child tag -> text of a flat `<xml>` document (CDATA unwrapped). DTDs, entities and deep nesting are refused."""
    builder = _FlatXMLBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(text)
        parser.close()
    except XMLParseError:
        raise
    except DefusedXmlException as exc:
        raise XMLParseError(f"forbidden XML construct: {type(exc).__name__}") from None
    # ParseError: malformed XML; ValueError/LookupError: undecodable input or an unknown declared encoding.
    except (ParseError, ValueError, LookupError, TypeError) as exc:
        raise XMLParseError(f"malformed XML: {type(exc).__name__}") from None
    return builder.fields


_TAG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# XML 1.0 `Char` production: anything else cannot appear in a document, not even inside CDATA.
_INVALID_XML_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# A value of a push's XML: text, a number, or nested elements (PUBLISHJOBFINISH's PublishEventInfo,
# docs/wechat/draft-events.md#publishjobfinish).
XmlValue = str | int | Mapping[str, "XmlValue"]


def build_xml(fields: Mapping[str, XmlValue]) -> str:
    """An `<xml>` document: strings in CDATA, ints bare, mappings as nested elements, in the given order (the
    shape WeChat pushes)."""
    return f"<xml>{_xml_elements(fields)}</xml>"


def _xml_elements(fields: Mapping[str, XmlValue]) -> str:
    parts = []
    for tag, value in fields.items():
        if _TAG_RE.fullmatch(tag) is None:
            raise ValueError(f"invalid XML tag name: {tag!r}")
        if isinstance(value, Mapping):
            parts.append(f"<{tag}>{_xml_elements(value)}</{tag}>")
            continue
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"value of <{tag}> must be str, int or a mapping, not {type(value).__name__}")
        if isinstance(value, int):
            parts.append(f"<{tag}>{value}</{tag}>")
            continue
        if _INVALID_XML_CHAR_RE.search(value):
            raise ValueError(f"value of <{tag}> contains characters XML cannot carry")
        # "]]>" would close the section early: end it after "]]" and start a new one before ">".
        cdata = value.replace("]]>", "]]]]><![CDATA[>")
        parts.append(f"<{tag}><![CDATA[{cdata}]]></{tag}>")
    return "".join(parts)
