from __future__ import annotations

import pytest

from logferry.observe import MASK, clear_secrets, is_sensitive_key, redact, redact_value, register_secret


def test_registered_secret_is_masked_everywhere_in_text() -> None:
    register_secret("hunter2-secret")
    assert redact("a hunter2-secret b hunter2-secret") == f"a {MASK} b {MASK}"


def test_values_shorter_than_four_chars_are_not_registered() -> None:
    register_secret("abc")
    assert redact("abc abcd") == "abc abcd"


def test_url_quoted_form_of_a_secret_is_masked() -> None:
    register_secret("p@ss/w rd+1")
    assert redact("GET /x?k=p%40ss%2Fw%20rd%2B1 and p%40ss/w%20rd%2B1 and p%40ss%2Fw+rd%2B1") == (
        f"GET /x?k={MASK} and {MASK} and {MASK}"
    )


def test_json_escaped_form_of_a_secret_is_masked() -> None:
    register_secret('quo"te\\back')
    assert redact('{"v": "quo\\"te\\\\back"}') == f'{{"v": "{MASK}"}}'


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    register_secret("abcd")
    register_secret("abcdefgh")
    assert redact("xx abcdefgh yy") == f"xx {MASK} yy"


def test_clear_secrets_forgets_registered_values() -> None:
    register_secret("forget-me")
    clear_secrets()
    assert redact("forget-me") == "forget-me"


def test_regex_metacharacters_in_a_secret_are_literal() -> None:
    register_secret("a.b*c(d)")
    assert redact("aXbbbcd a.b*c(d)") == f"aXbbbcd {MASK}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer xyz", "Authorization: Bearer ***"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic ***"),
        ('{"Authorization":"Bearer eyJ.abc.def"}', '{"Authorization":"Bearer ***"}'),
        ("{'Authorization': 'SharedKey acct:c2ln'}", "{'Authorization': 'SharedKey ***'}"),
        ("Proxy-Authorization: Basic Zm9v", "Proxy-Authorization: Basic ***"),
        ("sent Bearer abc.def-ghi== to host", "sent Bearer *** to host"),
        (
            "client_secret=s3cr3t&grant_type=client_credentials",
            "client_secret=***&grant_type=client_credentials",
        ),
        ("?access_token=tok123 ok", "?access_token=*** ok"),
        ('password="two words" next', "password=*** next"),
        ('{"client_secret": "s3cr3t", "scope": "x"}', '{"client_secret": "***", "scope": "x"}'),
        ('{"clientSecret":"a\\"b"}', '{"clientSecret":"***"}'),
        ("{'password': 'hunter2'}", "{'password': '***'}"),
        ('"{\\"access_token\\": \\"tok\\"}"', '"{\\"access_token\\": \\"***\\"}"'),
        ('{"refresh_token": "r1", "api_key": "k1"}', '{"refresh_token": "***", "api_key": "***"}'),
    ],
    ids=[
        "bearer-header",
        "basic-header-lowercase",
        "header-in-json",
        "header-in-python-repr",
        "proxy-authorization",
        "bare-bearer-token",
        "form-client-secret",
        "query-access-token",
        "form-quoted-password",
        "json-client-secret",
        "json-camelcase-with-escaped-quote",
        "repr-password",
        "json-inside-json-string",
        "json-refresh-token-and-api-key",
    ],
)
def test_credential_shapes_are_masked_without_registration(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the Bearer token expired",
        'WWW-Authenticate: Bearer realm="api", error="invalid_token"',
        "authorization failed for tenant",
        "client_secret_ref=env:AZURE_SECRET_NAME_IS_NOT_A_SECRET_KEY",
        "polled 120 events in 3 pages",
    ],
    ids=["prose-bearer-token", "rfc6750-challenge", "prose-authorization", "other-key", "plain"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_is_idempotent() -> None:
    register_secret("idem-secret")
    once = redact("Authorization: Bearer xyz idem-secret client_secret=abc")
    assert redact(once) == once


@pytest.mark.parametrize(
    "key",
    ["Authorization", "client_secret", "clientSecret", "x-api-key", "PASSWORD", "Cookie"],
)
def test_is_sensitive_key_recognises_credential_names(key: str) -> None:
    assert is_sensitive_key(key)


def test_is_sensitive_key_rejects_ordinary_names() -> None:
    assert not is_sensitive_key("tenant_id")


def test_redact_value_masks_sensitive_keys_and_walks_containers() -> None:
    register_secret("nested-secret")
    value = {
        "headers": {"Authorization": "Basic Zm9vOmJhcg==", "Accept": "application/json"},
        "items": ["nested-secret", 3, None, True],
        "count": 2,
    }
    assert redact_value(value) == {
        "headers": {"Authorization": MASK, "Accept": "application/json"},
        "items": [MASK, 3, None, True],
        "count": 2,
    }


def test_redact_value_renders_unknown_objects_as_redacted_text() -> None:
    register_secret("repr-secret")

    class Thing:
        def __str__(self) -> str:
            return "Thing(key=repr-secret)"

    assert redact_value(Thing()) == f"Thing(key={MASK})"
