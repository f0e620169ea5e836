"""operators.subjects: subject validation and wildcard subset/overlap checks (pure)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.subjects import MAX_SUBJECT_LENGTH, SubjectError, has_wildcards, is_subset, overlaps, validate_subject

# --- validate_subject -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    ["a", "a.b.c", "foo.*", "foo.>", ">", "*", "*.*", "*.>", "a.*.c.>", "_INBOX.abc123", "$SYS.REQ.CLAIMS.UPDATE",
     "ü.ß.名前", "a-b_c.d~e", "x" * MAX_SUBJECT_LENGTH],
)  # fmt: skip
def test_valid_subjects(subject):
    assert validate_subject(subject) == subject


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("", "is empty"),
        ("a..b", "empty token"),
        (".a", "empty token"),
        ("a.", "empty token"),
        (".", "empty token"),
        ("a.b.", "empty token"),
        ("a b", "whitespace"),
        (" a", "whitespace"),
        ("a\t", "whitespace"),
        ("a\nb", "whitespace"),
        ("a\rb", "whitespace"),
        ("a\x0bb", "whitespace"),
        ("a\x0cb", "whitespace"),
        ("a.>.b", "'>' must be the last token"),
        (">.a", "'>' must be the last token"),
        ("a.*>", "whole tokens"),
        ("a*", "whole tokens"),
        ("a.b*", "whole tokens"),
        ("*a.b", "whole tokens"),
        ("a>", "whole tokens"),
        ("a.>>", "whole tokens"),
        ("**", "whole tokens"),
        ("a\x00b", "control character"),
        ("a\x1bb", "control character"),
        ("a\x7f", "control character"),
        ("a\x01.b", "control character"),
        ("x" * (MAX_SUBJECT_LENGTH + 1), "longer than 512"),
        ("a.\ud800", "not valid Unicode"),
    ],
)
def test_invalid_subjects(subject, message):
    with pytest.raises(SubjectError, match=message):
        validate_subject(subject)


@pytest.mark.parametrize("subject", ["*", ">", "a.*", "a.>", "*.b", "a.*.c"])
def test_wildcards_refused_when_not_allowed(subject):
    with pytest.raises(SubjectError, match="may not contain wildcards"):
        validate_subject(subject, wildcards=False)
    assert validate_subject(subject, wildcards=True) == subject


def test_literal_allowed_without_wildcards():
    assert validate_subject("a.b.c", wildcards=False) == "a.b.c"


@pytest.mark.parametrize("value", [None, 1, b"a.b", ["a"]])
def test_non_string(value):
    with pytest.raises(SubjectError, match="must be a string"):
        validate_subject(value)


def test_what_names_the_field():
    with pytest.raises(SubjectError, match=r"^local_subject is empty$"):
        validate_subject("", what="local_subject")


def test_subject_error_is_value_error():
    assert issubclass(SubjectError, ValueError)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [("a", False), ("a.b", False), ("*", True), ("a.>", True), ("a.*.b", True), ("a*", False), ("a.b>", False)],
)
def test_has_wildcards(subject, expected):
    assert has_wildcards(subject) is expected


def _independent_valid(subject: str, wildcards: bool = True) -> bool:
    """A second, straightforward statement of the rules."""
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        return False
    if any(c in " \t\r\n\f\v" for c in subject):
        return False
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in subject):
        return False
    toks = subject.split(".")
    for i, t in enumerate(toks):
        if t == "":
            return False
        if t in ("*", ">"):
            if not wildcards or (t == ">" and i != len(toks) - 1):
                return False
        elif "*" in t or ">" in t:
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.*> \t\x00\x7fé", max_size=12), st.booleans())
def test_property_validate_matches_independent_rules(subject, wildcards):
    try:
        validate_subject(subject, wildcards=wildcards)
        ok = True
    except SubjectError:
        ok = False
    assert ok is _independent_valid(subject, wildcards)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_property_validate_only_raises_subject_error(subject):
    try:
        assert validate_subject(subject) == subject
    except SubjectError:
        pass


# --- is_subset / overlaps against a brute-force matcher -------------------------------------------

ALPHABET = ("a", "b")  # literal tokens patterns use
FRESH = "c"  # a token no pattern names: stands for "any other token"


def matches(pattern: str, literal: str) -> bool:
    pt, lt = pattern.split("."), literal.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return len(lt) > i
        if i >= len(lt):
            return False
        if p != "*" and p != lt[i]:
            return False
    return len(lt) == len(pt)


def universe(max_tokens: int) -> list[str]:
    out = []
    for n in range(1, max_tokens + 1):
        out += [".".join(t) for t in itertools.product((*ALPHABET, FRESH), repeat=n)]
    return out


_UNIVERSES = {n: universe(n) for n in range(1, 7)}


def _bound(*patterns: str) -> list[str]:
    # Literal subjects one token longer than the longest pattern are enough to tell patterns apart.
    return _UNIVERSES[max(len(p.split(".")) for p in patterns) + 1]


def brute_is_subset(sub: str, pat: str) -> bool:
    return all(matches(pat, x) for x in _bound(sub, pat) if matches(sub, x))


def brute_overlaps(a: str, b: str) -> bool:
    return any(matches(a, x) and matches(b, x) for x in _bound(a, b))


patterns = st.builds(
    lambda toks, tail: ".".join(toks + ([">"] if tail else [])),
    st.lists(st.sampled_from([*ALPHABET, "*"]), min_size=0, max_size=4),
    st.booleans(),
).filter(bool)


def test_matcher_sanity():
    assert matches("a.*", "a.b") and not matches("a.*", "a") and not matches("a.*", "a.b.c")
    assert matches("a.>", "a.b.c") and not matches("a.>", "a")
    assert matches(">", "a") and matches("*", "c")


@pytest.mark.parametrize(
    ("sub", "pat", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.*", True),
        ("a.b", "a.>", True),
        ("a.b", ">", True),
        ("a.*", "a.>", True),
        ("a.>", "a.>", True),
        ("a.>", ">", True),
        ("*", ">", True),
        ("*.>", ">", True),
        ("a.*", "a.b", False),
        ("a.>", "a.*", False),
        ("a.>", "a.*.>", False),
        ("a", "a.>", False),
        ("a.b", "a.b.>", False),
        (">", "*.>", False),
        (">", "*", False),
        ("a.b.c", "a.*", False),
        ("a", "b", False),
        ("*", "a", False),
    ],
)
def test_is_subset_examples(sub, pat, expected):
    assert is_subset(sub, pat) is expected
    assert brute_is_subset(sub, pat) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "*.b", True),
        ("a.>", "a.b.c", True),
        (">", "a", True),
        ("a.>", "a", False),
        ("*.>", "a", False),
        ("a.*", "a.b.c", False),
        ("a", "b", False),
        ("a.b", "a.b.c", False),
        ("*.*", "*", False),
        ("a.>", "*.b.>", True),
    ],
)
def test_overlaps_examples(a, b, expected):
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected
    assert brute_overlaps(a, b) is expected


@settings(max_examples=300, deadline=None)
@given(patterns, patterns)
def test_property_is_subset_matches_brute_force(sub, pat):
    assert is_subset(sub, pat) is brute_is_subset(sub, pat)


@settings(max_examples=300, deadline=None)
@given(patterns, patterns)
def test_property_overlaps_matches_brute_force(a, b):
    assert overlaps(a, b) is brute_overlaps(a, b)
    assert overlaps(a, b) is overlaps(b, a)


@settings(max_examples=200, deadline=None)
@given(patterns, patterns)
def test_property_relations(a, b):
    assert is_subset(a, a)
    assert overlaps(a, a)
    if is_subset(a, b):
        assert overlaps(a, b)
    if is_subset(a, b) and is_subset(b, a):
        assert a == b
    assert is_subset(a, ">")
