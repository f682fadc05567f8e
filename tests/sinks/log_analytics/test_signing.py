"""The SharedKey signature, checked against the spec's string and an independent HMAC (openssl)."""

from __future__ import annotations

import base64
import subprocess

from logferry.sinks.log_analytics.signing import SharedKeySigner, rfc1123_date, string_to_sign

KEY = base64.b64encode(bytes(range(64))).decode()
WORKSPACE = "5f1c2b3a-4d5e-4f60-8a1b-2c3d4e5f6a7b"
DATE = "Mon, 04 Apr 2016 08:00:00 GMT"


def openssl_signature(key_b64: str, message: str) -> str:
    """HMAC-SHA256 by another implementation, so a shared mistake cannot hide."""
    hexkey = base64.b64decode(key_b64).hex()
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{hexkey}", "-binary"],
        input=message.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return base64.b64encode(digest).decode()


def test_string_to_sign_is_the_specs_example() -> None:
    expected = "POST\n1024\napplication/json\nx-ms-date:Mon, 04 Apr 2016 08:00:00 GMT\n/api/logs"
    assert string_to_sign(1024, DATE) == expected


def test_signature_matches_an_independent_hmac() -> None:
    signer = SharedKeySigner(WORKSPACE, KEY)
    assert signer.signature(1024, DATE) == openssl_signature(KEY, string_to_sign(1024, DATE))


def test_authorization_signs_the_byte_length_of_a_non_ascii_body() -> None:
    body = '[{"user":"Jürgen","note":"€ 😀"}]'.encode()
    assert len(body) != len(body.decode())  # the case that breaks signers using len(str)
    signer = SharedKeySigner(WORKSPACE, KEY)
    header = signer.authorization(body, DATE)
    assert header == f"SharedKey {WORKSPACE}:{openssl_signature(KEY, string_to_sign(len(body), DATE))}"
    assert header != f"SharedKey {WORKSPACE}:{signer.signature(len(body.decode()), DATE)}"


def test_date_is_rfc1123_in_gmt() -> None:
    assert rfc1123_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert rfc1123_date(1459756800) == DATE


def test_signer_repr_holds_no_key() -> None:
    assert KEY not in repr(SharedKeySigner(WORKSPACE, KEY))
