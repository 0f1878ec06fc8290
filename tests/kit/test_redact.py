"""kit.redact: credentials are masked in headers, queries, JSON and paths (security.md §7.3)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from thingbucket.kit.redact import (
    MASK,
    mask_credential,
    redact,
    redact_headers,
    redact_path,
    redact_query,
)

PREFIXES = ["tb_at_", "tb_rt_", "tb_p_", "tb_k_", "tb_d_", "dakkio_"]


def make_jwt(claims: dict[str, Any] | None = None) -> str:
    """A JWT-shaped string (the signature need not be valid for redaction)."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    header = part({"alg": "RS256", "typ": "JWT"})
    payload = part(claims or {"sub": "thing-1", "exp": 1_800_000_000})
    return f"{header}.{payload}.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"


# --- mask format ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_credential_with_a_listed_prefix_keeps_only_its_prefix(prefix: str) -> None:
    assert mask_credential(prefix + "Zm9vYmFyYmF6cXV4") == prefix + "…"


@pytest.mark.parametrize("value", ["hunter2", "", make_jwt(), "TB_K_upper", "xtb_k_abc"])
def test_other_secrets_become_the_plain_mask(value: str) -> None:
    assert mask_credential(value) == MASK == "[redacted]"


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", "Bearer tb_at_abcdefghijklmnop", "tb_at_…"),
        ("authorization", "bearer tb_k_0123456789", "tb_k_…"),
        ("AUTHORIZATION", "  Bearer   tb_d_0123456789  ", "tb_d_…"),
        ("Authorization", f"Bearer {make_jwt()}", MASK),
        ("Authorization", "Basic dXNlcjpwYXNzd29yZA==", MASK),
        ("Authorization", "Bitpool2 0f8fad5b-d9cb-469f-a165-70867728950e", MASK),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz", MASK),
        ("X-API-Key", "tb_k_0123456789", "tb_k_…"),
        ("x-api-key", "dakkio_a_0123456789", "dakkio_…"),
        ("Cookie", "session=abc; theme=dark", MASK),
        ("Set-Cookie", "session=abc; HttpOnly", MASK),
        ("OnboardingSession", "abc123", MASK),
        ("Authorization", "", MASK),
    ],
)
def test_secret_headers_are_masked_in_any_case(name: str, value: str, expected: str) -> None:
    assert redact_headers({name: value}) == {name: expected}


def test_other_headers_pass_unchanged_and_the_input_is_not_modified() -> None:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "dcd-sdk/0.1.22",
        "X-Request-ID": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "Authorization": "Bearer tb_at_secretsecret",
        "Accept": "*/*",
    }
    before = dict(headers)
    out = redact_headers(headers)
    assert headers == before
    assert list(out) == list(headers)
    assert out == {**before, "Authorization": "tb_at_…"}
    assert all("secretsecret" not in v for v in out.values())


# --- query strings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "access_token",
        "bearer_token",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "password",
        "client_secret",
        "ACCESS_TOKEN",
        "Api_Key",
        "Password",
    ],
)
def test_secret_query_values_are_masked_in_any_case(name: str) -> None:
    out = redact_query(f"from=1&{name}=s3cr3t-value&to=2")
    assert "s3cr3t" not in out
    assert parse_qsl(out, keep_blank_values=True) == [("from", "1"), (name, MASK), ("to", "2")]


def test_a_query_without_secrets_keeps_every_pair_in_order() -> None:
    query = "from=1700000000000&to=1700000100000&limit=50&cursor=WzEyM10&dims=a%2Cb&empty="
    out = redact_query(query)
    assert parse_qsl(out, keep_blank_values=True) == parse_qsl(query, keep_blank_values=True)


def test_a_simple_query_comes_back_byte_for_byte_but_for_the_mask() -> None:
    assert redact_query("a=1&token=abc&b=2") == "a=1&token=%5Bredacted%5D&b=2"


def test_repeated_and_percent_encoded_secret_names_are_all_masked() -> None:
    out = redact_query("token=one&token=two&access%5Ftoken=three&x=keep")
    pairs = parse_qsl(out)
    assert pairs == [("token", MASK), ("token", MASK), ("access_token", MASK), ("x", "keep")]
    assert not {"one", "two", "three"} & {v for _, v in pairs}


def test_an_empty_query_stays_empty() -> None:
    assert redact_query("") == ""


# --- JSON fields ------------------------------------------------------------------------------

SECRET_FIELD_NAMES = [
    "password",
    "_password",
    "thingPassword",
    "newPassword",
    "client_secret",
    "secret",
    "access_token",
    "accessToken",
    "_accessToken",
    "refresh_token",
    "device_token",
    "forwarding_token",
    "legacy_api_key",
    "key",
    "Value",
]


@pytest.mark.parametrize("name", SECRET_FIELD_NAMES)
@pytest.mark.parametrize("case", [str, str.lower, str.upper, str.swapcase])
def test_secret_json_fields_are_masked_in_any_case(name: str, case: Any) -> None:
    field = case(name)
    out = redact({field: "plain-secret-1234", "name": "sensor"})
    assert out == {field: MASK, "name": "sensor"}


def test_secret_fields_are_masked_whatever_their_value_and_depth() -> None:
    doc = {
        "thing": {"id": "t1", "thingPassword": {"nested": "object"}},
        "keys": [{"key": 12345, "label": "k1"}, {"KEY": None, "label": "k2"}],
        "tokens": ({"refresh_token": ["a", "b"]},),
    }
    assert redact(doc) == {
        "thing": {"id": "t1", "thingPassword": MASK},
        "keys": [{"key": MASK, "label": "k1"}, {"KEY": MASK, "label": "k2"}],
        "tokens": [{"refresh_token": MASK}],
    }


def test_credential_strings_are_masked_under_any_field_name() -> None:
    jwt = make_jwt()
    doc = {
        "note": "tb_k_0123456789abcdef",
        "list": ["ok", "tb_d_0123456789", jwt, "dakkio_r_abc"],
        "inner": {"header": jwt},
    }
    assert redact(doc) == {
        "note": "tb_k_…",
        "list": ["ok", "tb_d_…", MASK, "dakkio_…"],
        "inner": {"header": MASK},
    }


def test_nothing_else_in_a_document_is_changed() -> None:
    doc: dict[Any, Any] = {
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "name": "Living room",
        "values": [[1_700_000_000_000, 21.5, None], [1_700_000_001_000, -3, True]],
        "unit": "°C",
        "count": 0,
        "ratio": 0.25,
        "flag": False,
        "nothing": None,
        "version": "1.2.3",
        "description": "a.b.c is not a token",
        "tags": ["tb", "tb_", "TB_K_NOT_A_PREFIX", "my tb_k_ is inside"],
        "nested": {"deeper": [{"keys_count": 3, "secretary": "Ann", "passwords_set": 1}]},
        7: "non-string key",
    }
    original = copy.deepcopy(doc)
    assert redact(doc) == original
    assert doc == original


@pytest.mark.parametrize("value", [None, 0, 1.5, True, "plain", "a.b.c"])
def test_scalars_that_are_not_credentials_pass_unchanged(value: object) -> None:
    assert redact(value) == value


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_path_segments_starting_with_a_credential_prefix_are_masked(prefix: str) -> None:
    path = f"/api/v1/keys/{prefix}AbCdEf0123456789/revoke"
    assert redact_path(path) == f"/api/v1/keys/{prefix}…/revoke"


def test_a_jwt_path_segment_is_masked() -> None:
    jwt = make_jwt()
    assert redact_path(f"/dcd/things/{jwt}") == f"/dcd/things/{MASK}"
    assert redact_path(f"/{jwt}/x") == f"/{MASK}/x"


def test_every_credential_segment_of_a_path_is_masked() -> None:
    assert redact_path("/a/tb_k_111/b/tb_d_222/") == "/a/tb_k_…/b/tb_d_…/"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/things/0f8fad5b-d9cb-469f-a165-70867728950e/properties",
        "/api/v1/things/t1/properties/p1/points",
        "/",
        "",
        "//double//slashes/",
        "/files/firmware-v1.2.3.bin",
        "/dcd/things/dcd:things:my-thing",
        "/api/v1/tb/things",
        "/api/v1/xtb_k_abc",
        "/short.jwt.like",
    ],
)
def test_other_paths_are_unchanged(path: str) -> None:
    assert redact_path(path) == path
