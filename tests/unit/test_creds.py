"""operators.creds: the `.creds` format of nsc / nats-io/jwt FormatUserConfig, and parsing it (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import claims, creds, nkeys
from operators.creds import Creds, CredsError
from operators.nkeys import KeyType

ACC = nkeys.generate(KeyType.ACCOUNT)
USER = nkeys.generate(KeyType.USER)
JWT = claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(), signer=ACC, iat=1_700_000_000)

# nats-io/jwt v2 creds_utils.go: formatJwt("user", jwt) followed by DecorateSeed(seed), written out by hand.
NSC_TEMPLATE = (
    "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
    "************************* IMPORTANT *************************\n"
    "NKEY Seed printed below can be used to sign and prove identity.\n"
    "NKEYs are sensitive and should be treated as secrets.\n\n"
    "-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
    "*************************************************************\n"
)


def test_format_is_byte_identical_to_nsc():
    text = creds.format_creds(JWT, USER.seed)
    assert text == NSC_TEMPLATE.format(jwt=JWT, seed=USER.seed)
    assert text.encode() == NSC_TEMPLATE.format(jwt=JWT, seed=USER.seed).encode()


def test_format_exact_lines():
    lines = creds.format_creds(JWT, USER.seed).split("\n")
    assert lines == [
        "-----BEGIN NATS USER JWT-----",
        JWT,
        "------END NATS USER JWT------",
        "",
        "************************* IMPORTANT *************************",
        "NKEY Seed printed below can be used to sign and prove identity.",
        "NKEYs are sensitive and should be treated as secrets.",
        "",
        "-----BEGIN USER NKEY SEED-----",
        USER.seed,
        "------END USER NKEY SEED------",
        "",
        "*************************************************************",
        "",
    ]
    # five dashes open, six close
    assert lines[0].startswith("-----B") and not lines[0].startswith("------")
    assert lines[2].startswith("------E") and lines[2].endswith("------")
    assert len(lines[4]) == len(lines[12]) == 61


def test_format_strips_surrounding_whitespace():
    assert creds.format_creds(f"  {JWT}\n", f"\n{USER.seed} ") == creds.format_creds(JWT, USER.seed)


def test_parse_round_trip():
    parsed = creds.parse_creds(creds.format_creds(JWT, USER.seed))
    assert parsed == Creds(jwt=JWT, seed=USER.seed)
    assert USER.seed not in repr(parsed)
    assert nkeys.from_seed(parsed.seed).public_key == claims.decode(parsed.jwt).subject


def test_parse_bytes():
    assert creds.parse_creds(creds.format_creds(JWT, USER.seed).encode()).jwt == JWT


def test_parse_crlf():
    text = creds.format_creds(JWT, USER.seed).replace("\n", "\r\n")
    assert "\r\n" in text
    assert creds.parse_creds(text) == Creds(jwt=JWT, seed=USER.seed)


def test_parse_without_trailing_newline_and_banner():
    text = (
        f"-----BEGIN NATS USER JWT-----\n{JWT}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{USER.seed}\n------END USER NKEY SEED------"
    )
    assert creds.parse_creds(text) == Creds(jwt=JWT, seed=USER.seed)


def test_parse_with_leading_text():
    text = "# my creds\n\n" + creds.format_creds(JWT, USER.seed)
    assert creds.parse_creds(text).seed == USER.seed


@pytest.mark.parametrize("key_type", [KeyType.ACCOUNT, KeyType.OPERATOR, KeyType.SERVER, KeyType.CLUSTER])
def test_format_refuses_non_user_seed(key_type):
    with pytest.raises(CredsError, match="not a user seed"):
        creds.format_creds(JWT, nkeys.generate(key_type).seed)


@pytest.mark.parametrize("key_type", [KeyType.ACCOUNT, KeyType.OPERATOR, KeyType.SERVER, KeyType.CLUSTER])
def test_parse_refuses_non_user_seed(key_type):
    seed = nkeys.generate(key_type).seed
    text = NSC_TEMPLATE.format(jwt=JWT, seed=seed)
    with pytest.raises(CredsError, match="seed is invalid") as info:
        creds.parse_creds(text)
    assert seed not in str(info.value)


def test_parse_refuses_corrupt_seed():
    seed = USER.seed
    bad = seed[:10] + ("A" if seed[10] != "A" else "B") + seed[11:]
    with pytest.raises(CredsError, match="seed is invalid"):
        creds.parse_creds(NSC_TEMPLATE.format(jwt=JWT, seed=bad))


def test_parse_refuses_public_key_as_seed():
    with pytest.raises(CredsError, match="seed is invalid"):
        creds.parse_creds(NSC_TEMPLATE.format(jwt=JWT, seed=USER.public_key))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        JWT,
        f"-----BEGIN NATS USER JWT-----\n{JWT}\n------END NATS USER JWT------\n",
        f"{JWT}\n{nkeys.generate(KeyType.USER).seed}\n",
    ],
)
def test_parse_refuses_missing_blocks(text):
    with pytest.raises(CredsError, match="no JWT and seed blocks"):
        creds.parse_creds(text)


@pytest.mark.parametrize("jwt", ["", "abc", "a.b", "a.b.c.d"])
def test_format_refuses_malformed_jwt(jwt):
    with pytest.raises(CredsError, match="malformed"):
        creds.format_creds(jwt, USER.seed)


def test_creds_error_is_value_error():
    assert issubclass(CredsError, ValueError)


_b64url = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=60)
jwt_like = st.tuples(_b64url, _b64url, _b64url).map(".".join)


@settings(max_examples=150, deadline=None)
@given(jwt=jwt_like, raw=st.binary(min_size=32, max_size=32), crlf=st.booleans())
def test_property_parse_format_round_trip(jwt, raw, crlf):
    seed = nkeys._encode_seed(KeyType.USER, raw)
    text = creds.format_creds(jwt, seed)
    assert text == NSC_TEMPLATE.format(jwt=jwt, seed=seed)
    if crlf:
        text = text.replace("\n", "\r\n")
    assert creds.parse_creds(text) == Creds(jwt=jwt, seed=seed)


@settings(max_examples=50, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_property_real_user_jwt_round_trip(name):
    user = nkeys.generate(KeyType.USER)
    jwt = claims.encode(claims.USER, subject=user.public_key, nats=claims.user_nats(), signer=ACC, name=name)
    parsed = creds.parse_creds(creds.format_creds(jwt, user.seed))
    assert parsed.jwt == jwt
    assert nkeys.from_seed(parsed.seed).public_key == claims.decode(parsed.jwt).subject == user.public_key
