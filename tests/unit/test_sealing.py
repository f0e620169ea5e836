"""operators.sealing: AES-256-GCM sealing of seeds at rest, key ids and rotation (pure)."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import nkeys
from operators.nkeys import KeyType
from operators.sealing import Keyring, SealError, associated_data, generate_key_spec


def key_b64(n: int = 32) -> str:
    return base64.b64encode(os.urandom(n)).decode()


K1 = f"k1:{key_b64()}"
K2 = f"k2:{key_b64()}"
ACC = nkeys.generate(KeyType.ACCOUNT)
OTHER = nkeys.generate(KeyType.ACCOUNT)


# --- parse ----------------------------------------------------------------------------------------


def test_parse_single_key():
    ring = Keyring.parse(K1)
    assert ring.current == "k1"
    assert set(ring.keys) == {"k1"}
    assert len(ring.keys["k1"]) == 32


def test_parse_newest_first_and_tolerant_spacing():
    ring = Keyring.parse(f" {K2} , ,{K1},")
    assert ring.current == "k2"
    assert set(ring.keys) == {"k1", "k2"}


def test_repr_hides_keys():
    ring = Keyring.parse(K1)
    assert K1.split(":", 1)[1] not in repr(ring)


def test_generate_key_spec():
    spec = generate_key_spec()
    ring = Keyring.parse(spec)
    assert ring.current.startswith("k") and len(ring.keys[ring.current]) == 32
    assert Keyring.parse(generate_key_spec("mine")).current == "mine"
    assert generate_key_spec() != generate_key_spec()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "holds no key"),
        (" , ", "holds no key"),
        ("nocolon", "<id>:<base64 key>"),
        (f":{key_b64()}", "<id>:<base64 key>"),
        (f"a$b:{key_b64()}", "<id>:<base64 key>"),
        ("k1:not base64!", "not base64"),
        ("k1:@@@@", "not base64"),
        ("k1:", "must be 32 bytes"),
        (f"k1:{key_b64(16)}", "must be 32 bytes"),
        (f"k1:{key_b64(33)}", "must be 32 bytes"),
        (f"k1:{key_b64(24)}", "must be 32 bytes"),
        (f"{K1},k1:{key_b64()}", "listed twice"),
        (f"{K1},junk", "<id>:<base64 key>"),
    ],
)
def test_parse_errors(spec, message):
    with pytest.raises(SealError, match=message):
        Keyring.parse(spec)


def test_parse_error_does_not_echo_key_material():
    secret = key_b64(16)
    with pytest.raises(SealError) as info:
        Keyring.parse(f"k1:{secret}")
    assert secret not in str(info.value)


# --- seal / open ----------------------------------------------------------------------------------


def test_seal_open_round_trip():
    ring = Keyring.parse(K1)
    sealed = ring.seal(ACC.seed, public_key=ACC.public_key)
    assert sealed.startswith("k1$")
    assert Keyring.key_id_of(sealed) == "k1"
    assert ACC.seed not in sealed
    assert ring.open(sealed, public_key=ACC.public_key) == ACC.seed


def test_seal_is_randomized():
    ring = Keyring.parse(K1)
    a, b = ring.seal(ACC.seed, public_key=ACC.public_key), ring.seal(ACC.seed, public_key=ACC.public_key)
    assert a != b
    assert ring.open(a, public_key=ACC.public_key) == ring.open(b, public_key=ACC.public_key) == ACC.seed


def test_sealed_layout():
    sealed = Keyring.parse(K1).seal(ACC.seed, public_key=ACC.public_key)
    blob = base64.b64decode(sealed.split("$", 1)[1], validate=True)
    assert len(blob) == 12 + len(ACC.seed) + 16  # nonce, ciphertext, GCM tag


def test_associated_data_binds_public_key():
    assert associated_data(ACC.public_key) == b"natsctl-seed:v1:" + ACC.public_key.encode()


def test_ciphertext_moved_to_another_public_key_fails():
    ring = Keyring.parse(K1)
    sealed = ring.seal(ACC.seed, public_key=ACC.public_key)
    with pytest.raises(SealError, match="does not open"):
        ring.open(sealed, public_key=OTHER.public_key)


def test_unknown_key_id_fails():
    sealed = Keyring.parse(K1).seal(ACC.seed, public_key=ACC.public_key)
    with pytest.raises(SealError, match="unknown key id 'k1'"):
        Keyring.parse(K2).open(sealed, public_key=ACC.public_key)


def test_same_id_different_key_fails():
    sealed = Keyring.parse(K1).seal(ACC.seed, public_key=ACC.public_key)
    with pytest.raises(SealError, match="does not open"):
        Keyring.parse(f"k1:{key_b64()}").open(sealed, public_key=ACC.public_key)


def test_relabelled_key_id_fails():
    # ciphertext sealed under k1, relabelled as k2 (both known): the wrong key cannot open it
    ring = Keyring.parse(f"{K1},{K2}")
    sealed = ring.seal(ACC.seed, public_key=ACC.public_key)
    with pytest.raises(SealError):
        ring.open("k2$" + sealed.split("$", 1)[1], public_key=ACC.public_key)


@pytest.mark.parametrize(
    "sealed",
    ["", "no-dollar-sign", "k1", "k1$", "k1$not base64!", "k1$" + base64.b64encode(b"short").decode(),
     "k1$" + base64.b64encode(bytes(12)).decode(), "k1$" + base64.b64encode(bytes(40)).decode(), "k1$é"],
)  # fmt: skip
def test_malformed_sealed_values(sealed):
    with pytest.raises(SealError):
        Keyring.parse(K1).open(sealed, public_key=ACC.public_key)


def test_rotation_opens_older_keys():
    old_ring = Keyring.parse(K1)
    old_sealed = old_ring.seal(ACC.seed, public_key=ACC.public_key)
    rotated = Keyring.parse(f"{K2},{K1}")  # new key first
    assert rotated.current == "k2"
    assert rotated.open(old_sealed, public_key=ACC.public_key) == ACC.seed
    new_sealed = rotated.seal(ACC.seed, public_key=ACC.public_key)
    assert Keyring.key_id_of(new_sealed) == "k2"
    assert rotated.open(new_sealed, public_key=ACC.public_key) == ACC.seed
    # the old ring alone cannot open what the rotated ring sealed
    with pytest.raises(SealError, match="unknown key id"):
        old_ring.open(new_sealed, public_key=ACC.public_key)
    # once the old key is dropped, old ciphertexts no longer open
    with pytest.raises(SealError, match="unknown key id"):
        Keyring.parse(K2).open(old_sealed, public_key=ACC.public_key)


def test_seal_error_is_value_error():
    assert issubclass(SealError, ValueError)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
       st.sampled_from(list(KeyType)))
def test_property_seal_open_round_trip(secret, key_type):
    ring = Keyring.parse(f"{K2},{K1}")
    public = nkeys.generate(key_type).public_key
    sealed = ring.seal(secret, public_key=public)
    assert ring.open(sealed, public_key=public) == secret


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_property_tampered_ciphertext_never_opens(data):
    ring = Keyring.parse(K1)
    sealed = ring.seal(ACC.seed, public_key=ACC.public_key)
    blob = bytearray(base64.b64decode(sealed.split("$", 1)[1]))
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SealError):
        ring.open("k1$" + base64.b64encode(bytes(blob)).decode(), public_key=ACC.public_key)
