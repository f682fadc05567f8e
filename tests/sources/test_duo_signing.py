"""Duo request signing against every published test vector (specs/duo.md §2-3)."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from yarl import URL

from logferry.config.secrets import Secret
from logferry.sources.duo.signing import (
    EMPTY_SHA512,
    DuoSigner,
    authorization,
    canon_params,
    canon_x_duo_headers,
    canonical_string,
    decoded_query,
    hmac_hex,
)


@pytest.mark.parametrize(
    ("pairs", "canon"),
    [
        ([("realname", "First Last")], "realname=First%20Last"),
        (
            [("words", "First Last"), ("success", "true"), ("digit", "5")],
            "digit=5&success=true&words=First%20Last",
        ),
        ([("foo_bar", "2"), ("foo", "1")], "foo=1&foo_bar=2"),
        (
            [("punct", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")],
            "punct=%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~",
        ),
        ([("ws", "\t\n\x0b\x0c\r ")], "ws=%09%0A%0B%0C%0D%20"),
        ([("sort", "ts:asc")], "sort=ts%3Aasc"),
        ([("next_offset", "1547486297000,5bea1c1e")], "next_offset=1547486297000%2C5bea1c1e"),
        ([("k", "b"), ("k", "a")], "k=a&k=b"),
        ([], ""),
    ],
)
def test_canonical_params(pairs: list[tuple[str, str]], canon: str) -> None:
    assert canon_params(pairs) == canon


def test_query_is_decoded_before_canonicalising_so_plus_and_percent20_sign_alike() -> None:
    assert canon_params(decoded_query("realname=First+Last")) == "realname=First%20Last"
    assert canon_params(decoded_query("realname=First%20Last")) == "realname=First%20Last"


UNICODE_PARAMS = [
    (
        "\u469a\u287b\u35d0\u8ef3\u6727\u502a\u0810\ud091\xc8\uc170",
        "\u0f45\u1a76\u341a\u654c\uc23f\u9b09\uabe2\u8343\u1b27\u60d0",
    ),
    (
        "\u7449\u7e4b\uccfb\u59ff\ufe5f\u83b7\uadcc\u900c\ucfd1\u7813",
        "\u8db7\u5022\u92d3\u42ef\u207d\u8730\uacfe\u5617\u0946\u4e30",
    ),
    (
        "\u7470\u9314\u901c\u9eae\u40d8\u4201\u82d8\u8c70\u1d31\ua042",
        "\u17d9\u0ba8\u9358\uaadf\ua42a\u48be\ufb96\u6fe9\ub7ff\u32f3",
    ),
    (
        "\uc2c5\u2c1d\u2620\u3617\u96b3F\u8605\u20e8\uac21\u5934",
        "\ufba9\u41aa\ubd83\u840b\u2615\u3e6e\u652d\ua8b5\ud56bU",
    ),
]
V2_SKEY = "gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT"
V2_DATE = "Fri, 07 Dec 2012 17:18:00 -0000"


def v2_canonical() -> str:
    return canonical_string(
        "v2-sha512", V2_DATE, "PoSt", "foO.BAr52.cOm", "/Foo/BaR2/qux", canon_params(UNICODE_PARAMS)
    )


def test_v2_canonical_string_lowercases_host_and_uppercases_method() -> None:
    canon = v2_canonical()
    assert canon.startswith(f"{V2_DATE}\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n%E4%9A%9A%E2%A1%BB")
    assert canon.count("\n") == 4


def test_v2_hmac_sha1_vector() -> None:
    assert hmac_hex(V2_SKEY, v2_canonical(), "v2-sha1") == "f01811cbbf9561623ab45b893096267fd46a5178"


def test_v2_hmac_sha512_vector_and_its_basic_header() -> None:
    sig = hmac_hex(V2_SKEY, v2_canonical(), "v2-sha512")
    assert sig == (
        "0508065035a03b2a1de2f453e629e791d180329e157f65df6b3e0f08299d4321e1c5c7a7c7ee6b9e5fc80d1fb6fbf3ad"
        "5eb7c44dd3b3985a02c37aca53ec3698"
    )
    assert (
        authorization("test_ikey", sig) == "Basic " + base64.b64encode(f"test_ikey:{sig}".encode()).decode()
    )


JSON_BODY = orjson.dumps(
    {"data": "abc123", "alpha": ["a", "b", "c", "d"], "info": {"test": 1, "another": 2}},
    option=orjson.OPT_SORT_KEYS,
)


def test_canonical_json_body_is_sorted_and_compact() -> None:
    assert JSON_BODY == b'{"alpha":["a","b","c","d"],"data":"abc123","info":{"another":2,"test":1}}'


def test_v5_canonical_string_with_one_x_duo_header() -> None:
    canon = canonical_string(
        "v5", "Tue, 17 Nov 2020 14:12:00", "POST", "foO.BAr52.cOm", "/Foo/BaR2/qux", "", JSON_BODY,
        {"X-Duo-Header-1": "header_value_1"},
    )  # fmt: skip
    body_hash = hashlib.sha512(JSON_BODY).hexdigest()
    assert canon == (
        f"Tue, 17 Nov 2020 14:12:00\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n\n{body_hash}\n"
        "630b4bfe7e9abd03da2eee8f0a5d4e60a254ec880a839bcc2223bb5b9443e8ef24d58f0254f1f5934bf8c017ebd0fd5b"
        "1acf86766bdbe74185e712a4092df3ed"
    )


def test_v5_header_hash_lowercases_then_sorts_and_ignores_non_duo_headers() -> None:
    assert canon_x_duo_headers(
        {"x-duo-A": "header_value_1", "X-Duo-B": "header_value_2", "non-duo": "x"}
    ) == (
        "60be11a30e0756f2ee2afdce1db849b987dcf86c1133394bd7bbbc9877920330c4d78aceacbb377ab8cbd9a8efe6a410"
        "fed4047376635ac71226ab46ca10d2b1"
    )
    assert canon_x_duo_headers({}) == EMPTY_SHA512 == hashlib.sha512(b"").hexdigest()


def test_v4_shape_is_v2_lines_plus_the_body_hash() -> None:
    # v4 is v5 without the header line; the published v4 string pins the body-hash line.
    canon = canonical_string(
        "v5", "Tue, 04 Jul 2017 14:12:00", "POST", "foO.BAr52.cOm", "/Foo/BaR2/qux", "", JSON_BODY
    )
    v4 = f"Tue, 04 Jul 2017 14:12:00\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n\n{hashlib.sha512(JSON_BODY).hexdigest()}"
    assert canon == f"{v4}\n{EMPTY_SHA512}"


DHP_IKEY = "DIABCDEFGHIJKLMNOPQR"
DHP_SKEY = "test" * 10
DHP_HOST = "api-xxxxxxxx.duosecurity.com"
DHP_DATE = "Fri, 24 May 2024 12:00:00 -0000"
DHP_HEADERS = {"x-duo-foo": "bar", "x-duo-bar": "foo", "non-duo-bar": "duo"}


@pytest.mark.parametrize(
    ("method", "query", "body", "headers", "signature"),
    [
        ("GET", "", b"", {}, "c454639d75b4e3d99b8b1d5e41cd7bb2d2d8ba55f6811f786dfb0edd4facd2f3a5e6d6c837f31f6826706325b4ed7dcdc5f11164948e57a7032a524990e01583"),
        ("POST", "", b"{}", {}, "12a05d783b2e58e36f37df8a6907835496fbe20fb3d04b15036c82b1694fc58d1c0451b937fb9ba6e7c2b44d89b473af708166183d216aea13e52742a57f239f"),
        ("GET", "foo=bar", b"", {}, "88fe80f3b242b992f4b301408d524a886274d3ed0c4c7bd184e1b4ff378e68ea05d9433c09938078c49517a6c4264c950be9ff5cc28ad2d448cea24bc93887ca"),
        ("POST", "", b'{"foo":"bar"}', {}, "643770af31006c584a758d926250e46a90d79100d21f7a0313c3e77d64fa3c5d2c94e2c9081a2b65343cc3d5f2ed21f7300ea50b00640cb1760f323192307d37"),
        ("GET", "foo=bar&one=1&bool=true", b"", DHP_HEADERS, "d46556726800415dc78cefc3fb4e11dcf3ee1342904f276ed5c8e3427878bd5376ea6c5551b90bf707fab53f6f1d20a114898898705d28268824edd0be5f1d53"),
        ("POST", "", b'{"bool":"true","foo":"bar","one":"1"}', DHP_HEADERS, "def7b7359b0399543b61d3d1a4252c1908eb486039168aa7d1c93545f052e121062e4d0d3cae80f0f125dc497c43c53b62c9db58cacd21394a3b17ad972e3793"),
    ],
)  # fmt: skip
async def test_v5_full_requests_sign_as_duo_hmac_python(
    method: str, query: str, body: bytes, headers: dict[str, str], signature: str
) -> None:
    # duo_hmac_python sends the date as x-duo-date, so it is inside the header hash too.
    sent = {**headers, "x-duo-date": DHP_DATE}
    signer = DuoSigner(DHP_IKEY, Secret(DHP_SKEY, "${env:X}"), DHP_HOST, "v5", date=lambda: DHP_DATE)
    url = URL.build(scheme="https", host=DHP_HOST, path="/api/path", query_string=query, encoded=True)
    await signer.apply(method, url, sent, body)
    assert sent["Authorization"] == authorization(DHP_IKEY, signature)


def test_v5_get_without_params_gives_the_published_header() -> None:
    sig = "c454639d75b4e3d99b8b1d5e41cd7bb2d2d8ba55f6811f786dfb0edd4facd2f3a5e6d6c837f31f6826706325b4ed7dcdc5f11164948e57a7032a524990e01583"
    assert authorization(DHP_IKEY, sig) == (
        "Basic RElBQkNERUZHSElKS0xNTk9QUVI6YzQ1NDYzOWQ3NWI0ZTNkOTliOGIxZDVlNDFjZDdiYjJkMmQ4YmE1NWY2ODExZjc4"
        "NmRmYjBlZGQ0ZmFjZDJmM2E1ZTZkNmM4MzdmMzFmNjgyNjcwNjMyNWI0ZWQ3ZGNkYzVmMTExNjQ5NDhlNTdhNzAzMmE1MjQ5"
        "OTBlMDE1ODM="
    )


def test_log_pull_canonical_string_matches_the_spec_example() -> None:
    query = "mintime=1700000000000&maxtime=1700003600000&limit=1000&sort=ts:asc"
    canon = canonical_string(
        "v2-sha512", "Tue, 21 Aug 2012 17:29:18 -0000", "GET", "api-xxxxxxxx.duosecurity.com",
        "/admin/v2/logs/authentication", canon_params(decoded_query(query)),
    )  # fmt: skip
    assert canon == (
        "Tue, 21 Aug 2012 17:29:18 -0000\nGET\napi-xxxxxxxx.duosecurity.com\n/admin/v2/logs/authentication\n"
        "limit=1000&maxtime=1700003600000&mintime=1700000000000&sort=ts%3Aasc"
    )


async def test_signer_sets_a_fresh_date_and_never_shows_the_secret() -> None:
    dates = iter(["Tue, 21 Aug 2012 17:29:18 -0000", "Tue, 21 Aug 2012 17:29:19 -0000"])
    signer = DuoSigner("DIKEY", Secret("s3cret-skey", "${env:DUO_SKEY}"), "api-x.duosecurity.com", "v2-sha1",
                       date=lambda: next(dates))  # fmt: skip
    url = URL("https://api-x.duosecurity.com/admin/v1/logs/administrator?mintime=1")
    first: dict[str, str] = {}
    second: dict[str, str] = {}
    await signer.apply("GET", url, first, b"")
    await signer.apply("GET", url, second, b"")
    assert first["Date"] != second["Date"]
    assert first["Authorization"] != second["Authorization"]
    assert len(base64.b64decode(first["Authorization"][6:]).decode().split(":")[1]) == 40
    assert "s3cret" not in repr(signer)
