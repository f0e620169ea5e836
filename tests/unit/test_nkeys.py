"""operators.nkeys: encoding, decoding, type checks, signatures (pure, no database)."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import nkeys
from operators.nkeys import KeyType, NKeyError

# Published nkeys test vector (used by the nkeys ports for Python, Ruby, Elixir, Erlang, D):
# this user seed, its public key, and its ed25519 signature of the nonce below.
VECTOR_SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"
VECTOR_PUBLIC = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L"
VECTOR_NONCE = b"PXoWU7zWAMt75FY"
VECTOR_SIGNATURE_B64 = "ZaAiVDgB5CeYoXoQ7cBCmq+ZllzUnGUoDVb8C7PilWvCs8XKfUchAUhz2P4BYAF++Dg3w05CqyQFRDiGL6LrDw=="
# A valid account public key from the same family of tests.
VECTOR_ACCOUNT = "AACKDD7DWAJM2K76WMDHTHTIN2WZLKA7MGSLNHIHSZ3ZRSEBZG6GWECF"

SEED_PREFIX = {
    KeyType.OPERATOR: "SO",
    KeyType.ACCOUNT: "SA",
    KeyType.USER: "SU",
    KeyType.SERVER: "SN",
    KeyType.CLUSTER: "SC",
}
LETTER = {KeyType.OPERATOR: "O", KeyType.ACCOUNT: "A", KeyType.USER: "U", KeyType.SERVER: "N", KeyType.CLUSTER: "C"}
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

key_types = st.sampled_from(list(KeyType))


# --- reference encoder, written from the nkeys spec independently of the module under test ------------


def ref_crc16(data: bytes) -> int:
    # binascii.crc_hqx with initial value 0 is CRC-16/XMODEM (poly 0x1021).
    return binascii.crc_hqx(data, 0)


def ref_encode(raw: bytes) -> str:
    crc = ref_crc16(raw)
    return base64.b32encode(raw + crc.to_bytes(2, "little")).decode().rstrip("=")


def ref_public(key_type: KeyType, raw32: bytes) -> str:
    return ref_encode(bytes([int(key_type)]) + raw32)


def ref_seed(key_type: KeyType, raw32: bytes) -> str:
    prefix = int(key_type)
    return ref_encode(bytes([(18 << 3) | (prefix >> 5), (prefix & 31) << 3]) + raw32)


def flip_char(text: str, i: int) -> str:
    """Replace character ``i`` by another base32 character."""
    c = text[i]
    other = B32[(B32.index(c) + 1) % 32] if c in B32 else "A"
    return text[:i] + other + text[i + 1 :]


# --- CRC ------------------------------------------------------------------------------------------


def test_crc16_xmodem_check_value():
    # The standard CRC-16/XMODEM check value.
    assert nkeys.crc16(b"123456789") == 0x31C3


def test_crc16_empty_is_zero():
    assert nkeys.crc16(b"") == 0


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_crc16_matches_reference(data):
    assert nkeys.crc16(data) == ref_crc16(data)


# --- known vector ---------------------------------------------------------------------------------


def test_known_vector_public_key():
    kp = nkeys.from_seed(VECTOR_SEED)
    assert kp.key_type is KeyType.USER
    assert kp.public_key == VECTOR_PUBLIC
    assert kp.seed == VECTOR_SEED


def test_known_vector_signature():
    kp = nkeys.from_seed(VECTOR_SEED)
    sig = kp.sign(VECTOR_NONCE)
    assert base64.b64encode(sig).decode() == VECTOR_SIGNATURE_B64
    assert nkeys.verify(VECTOR_PUBLIC, VECTOR_NONCE, base64.b64decode(VECTOR_SIGNATURE_B64))


def test_known_account_key_decodes():
    key_type, raw = nkeys.decode_public_key(VECTOR_ACCOUNT, KeyType.ACCOUNT)
    assert key_type is KeyType.ACCOUNT
    assert len(raw) == 32
    assert nkeys.public_key_from_raw(KeyType.ACCOUNT, raw) == VECTOR_ACCOUNT


def test_known_seed_accepts_bytes_and_whitespace():
    assert nkeys.from_seed(VECTOR_SEED.encode()).public_key == VECTOR_PUBLIC
    assert nkeys.from_seed(f"  {VECTOR_SEED}\n").public_key == VECTOR_PUBLIC


# --- generate / from_seed for every type ----------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_generate_shape(key_type):
    kp = nkeys.generate(key_type)
    assert kp.key_type is key_type
    assert len(kp.seed) == 58
    assert kp.seed.startswith(SEED_PREFIX[key_type])
    assert len(kp.public_key) == 56
    assert kp.public_key[0] == LETTER[key_type] == key_type.letter
    assert set(kp.public_key) <= set(B32)
    assert set(kp.seed) <= set(B32)
    assert key_type.label == key_type.name.lower()


@pytest.mark.parametrize("key_type", list(KeyType))
def test_generate_from_seed_round_trip(key_type):
    kp = nkeys.generate(key_type)
    again = nkeys.from_seed(kp.seed)
    assert again == kp
    assert again.public_key == kp.public_key
    assert again.key_type is key_type
    assert nkeys.from_seed(kp.seed, key_type).public_key == kp.public_key
    assert nkeys.key_type_of(kp.public_key) is key_type
    assert nkeys.letter_type(kp.public_key[0]) is key_type


@pytest.mark.parametrize("key_type", list(KeyType))
def test_decode_public_key_expected_type(key_type):
    kp = nkeys.generate(key_type)
    got_type, raw = nkeys.decode_public_key(kp.public_key, key_type)
    assert got_type is key_type and len(raw) == 32
    assert nkeys.decode_public_key(kp.public_key) == (key_type, raw)
    assert nkeys.decode_public_key(kp.public_key.encode()) == (key_type, raw)
    assert nkeys.validate_public_key(kp.public_key, key_type) == kp.public_key
    assert nkeys.is_valid_public_key(kp.public_key)
    assert nkeys.is_valid_public_key(kp.public_key, key_type)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_generated_keys_are_distinct(key_type):
    assert len({nkeys.generate(key_type).public_key for _ in range(20)}) == 20


def test_repr_hides_seed():
    kp = nkeys.generate(KeyType.USER)
    assert kp.seed not in repr(kp)
    assert kp.public_key in repr(kp)


@settings(max_examples=150, deadline=None)
@given(key_types, st.binary(min_size=32, max_size=32))
def test_encoding_matches_reference(key_type, raw):
    seed = ref_seed(key_type, raw)
    kp = nkeys.from_seed(seed)
    assert kp.key_type is key_type
    assert kp.seed == seed
    # The public key is the reference encoding of the ed25519 public key of that seed.
    _, pub_raw = nkeys.decode_public_key(kp.public_key)
    assert kp.public_key == ref_public(key_type, pub_raw)
    assert nkeys.public_key_from_raw(key_type, pub_raw) == kp.public_key


@settings(max_examples=150, deadline=None)
@given(key_types, st.binary(min_size=32, max_size=32))
def test_public_key_round_trip(key_type, raw):
    public = nkeys.public_key_from_raw(key_type, raw)
    assert public == ref_public(key_type, raw)
    assert nkeys.decode_public_key(public, key_type) == (key_type, raw)


# --- wrong type -----------------------------------------------------------------------------------


@pytest.mark.parametrize("actual", list(KeyType))
@pytest.mark.parametrize("expected", list(KeyType))
def test_wrong_public_key_type(actual, expected):
    kp = nkeys.generate(actual)
    if actual is expected:
        nkeys.decode_public_key(kp.public_key, expected)
        return
    with pytest.raises(NKeyError, match=f"expected {expected.label} public key, got {actual.label} public key"):
        nkeys.decode_public_key(kp.public_key, expected)
    with pytest.raises(NKeyError):
        nkeys.validate_public_key(kp.public_key, expected)
    assert not nkeys.is_valid_public_key(kp.public_key, expected)


@pytest.mark.parametrize("actual", list(KeyType))
def test_wrong_seed_type(actual):
    kp = nkeys.generate(actual)
    for expected in KeyType:
        if expected is actual:
            continue
        with pytest.raises(NKeyError, match=f"expected {expected.label} seed, got {actual.label} seed"):
            nkeys.from_seed(kp.seed, expected)


# --- malformed keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_bad_checksum_every_position_public(key_type):
    public = nkeys.generate(key_type).public_key
    # 56 base32 characters encode exactly 35 bytes: every character carries data, so any change
    # alters the bytes and is caught by the type check or the CRC.
    for i in range(len(public)):
        bad = flip_char(public, i)
        assert bad != public
        with pytest.raises(NKeyError):
            nkeys.decode_public_key(bad)
        assert not nkeys.is_valid_public_key(bad)


def test_bad_checksum_message():
    public = nkeys.generate(KeyType.ACCOUNT).public_key
    bad = flip_char(public, 30)
    with pytest.raises(NKeyError, match="bad checksum"):
        nkeys.decode_public_key(bad)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_bad_checksum_seed(key_type):
    seed = nkeys.generate(key_type).seed
    # The last character of a 58-character seed holds 2 padding bits; every other one is data.
    for i in range(len(seed) - 1):
        with pytest.raises(NKeyError):
            nkeys.from_seed(flip_char(seed, i))


def test_seed_bad_checksum_message():
    seed = nkeys.generate(KeyType.USER).seed
    with pytest.raises(NKeyError, match="bad checksum"):
        nkeys.from_seed(flip_char(seed, 20))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "56 characters, got 0"),
        ("A", "56 characters, got 1"),
        (VECTOR_ACCOUNT[:-1], "56 characters, got 55"),
        (VECTOR_ACCOUNT + "A", "56 characters, got 57"),
        (VECTOR_ACCOUNT.lower(), "not valid base32"),
        ("0" * 56, "not valid base32"),
        ("1" + VECTOR_ACCOUNT[1:], "not valid base32"),
        ("!" * 56, "not valid base32"),
        (VECTOR_ACCOUNT[:20] + " " + VECTOR_ACCOUNT[21:], "not valid base32"),
    ],
)
def test_malformed_public_keys(value, message):
    with pytest.raises(NKeyError, match=message):
        nkeys.decode_public_key(value)
    assert not nkeys.is_valid_public_key(value)


def test_non_ascii_bytes_public_key():
    with pytest.raises(NKeyError, match="not ASCII"):
        nkeys.decode_public_key("é".encode() * 28)


def test_empty_bytes_public_key():
    with pytest.raises(NKeyError):
        nkeys.decode_public_key(b"")


@pytest.mark.parametrize("key_type", list(KeyType))
def test_seed_passed_as_public_key(key_type):
    kp = nkeys.generate(key_type)
    with pytest.raises(NKeyError, match="seed, not a public key") as info:
        nkeys.decode_public_key(kp.seed)
    assert kp.seed not in str(info.value)
    with pytest.raises(NKeyError, match="seed, not a public key"):
        nkeys.decode_public_key(kp.seed.encode())
    assert not nkeys.is_valid_public_key(kp.seed)


def test_seed_prefixed_public_key_body():
    # A 56-character string whose decoded body carries the seed prefix byte.
    bad = ref_encode(bytes([18 << 3]) + bytes(32))
    with pytest.raises(NKeyError, match="seed, not a public key"):
        nkeys.decode_public_key(bad)


def test_unknown_public_key_prefix():
    bad = ref_encode(bytes([15 << 3]) + bytes(32))  # 'P' (private key prefix), not a public type
    with pytest.raises(NKeyError, match="unknown public key prefix"):
        nkeys.decode_public_key(bad)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_public_key_passed_as_seed(key_type):
    with pytest.raises(NKeyError, match="58 characters, got 56"):
        nkeys.from_seed(nkeys.generate(key_type).public_key)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "58 characters, got 0"),
        ("UAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU", "58 characters, got 57"),
        (VECTOR_SEED.lower(), "not valid base32"),
        ("S" + "1" * 57, "not valid base32"),
        # right length and checksum but no seed prefix
        (ref_encode(bytes([0, 0]) + bytes(32)), "missing the seed prefix"),
        # seed prefix with a type that is not a key type ('P' = 15 << 3)
        (ref_encode(bytes([(18 << 3) | (120 >> 5), (120 & 31) << 3]) + bytes(32)), "unknown seed key type"),
    ],
)
def test_malformed_seeds(value, message):
    with pytest.raises(NKeyError, match=message):
        nkeys.from_seed(value)


def test_public_key_from_raw_wrong_length():
    with pytest.raises(NKeyError, match="32 bytes"):
        nkeys.public_key_from_raw(KeyType.USER, bytes(31))


def test_nkey_error_is_value_error():
    assert issubclass(NKeyError, ValueError)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
def test_decode_public_key_never_crashes(text):
    try:
        nkeys.decode_public_key(text)
    except NKeyError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=B32, min_size=56, max_size=56))
def test_random_base32_public_keys(text):
    # Either refused, or it really is a well-formed key that re-encodes to itself.
    try:
        key_type, raw = nkeys.decode_public_key(text)
    except NKeyError:
        return
    assert nkeys.public_key_from_raw(key_type, raw) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
def test_from_seed_never_crashes(text):
    try:
        nkeys.from_seed(text)
    except NKeyError:
        pass


# --- sign / verify --------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_sign_verify(key_type):
    kp = nkeys.generate(key_type)
    sig = kp.sign(b"hello")
    assert len(sig) == 64
    assert kp.verify(b"hello", sig)
    assert nkeys.verify(kp.public_key, b"hello", sig)
    assert nkeys.from_seed(kp.seed).sign(b"hello") == sig  # ed25519 is deterministic
    assert not nkeys.verify(nkeys.generate(key_type).public_key, b"hello", sig)


def test_verify_bad_signature_shapes():
    kp = nkeys.generate(KeyType.USER)
    assert not kp.verify(b"data", b"")
    assert not kp.verify(b"data", b"\x00" * 63)
    assert not kp.verify(b"data", b"\x00" * 64)
    assert not kp.verify(b"data", kp.sign(b"data") + b"\x00")


def test_verify_bad_public_key_raises():
    with pytest.raises(NKeyError):
        nkeys.verify("not-a-key", b"data", b"\x00" * 64)


_SIGNER = nkeys.generate(KeyType.ACCOUNT)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.data())
def test_flipped_data_byte_fails_verify(data, draw):
    sig = _SIGNER.sign(data)
    i = draw.draw(st.integers(0, len(data) - 1))
    bit = draw.draw(st.integers(1, 255))
    bad = data[:i] + bytes([data[i] ^ bit]) + data[i + 1 :]
    assert _SIGNER.verify(data, sig)
    assert not _SIGNER.verify(bad, sig)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 63), st.integers(1, 255))
def test_flipped_signature_byte_fails_verify(data, i, bit):
    sig = _SIGNER.sign(data)
    bad = sig[:i] + bytes([sig[i] ^ bit]) + sig[i + 1 :]
    assert not _SIGNER.verify(data, bad)
