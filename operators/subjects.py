"""NATS subject syntax and matching (pure, no Django).

Rules follow nats-server's subject validation: tokens separated by ``.``, no empty token, no
whitespace, ``*`` and ``>`` only as whole tokens and ``>`` only last.
"""

from __future__ import annotations

__all__ = ["MAX_SUBJECT_LENGTH", "SubjectError", "has_wildcards", "is_subset", "overlaps", "validate_subject"]

MAX_SUBJECT_LENGTH = 512
_WHITESPACE = frozenset(" \t\r\n\f\v")


class SubjectError(ValueError):
    """A subject that nats-server would refuse, with the reason."""


def validate_subject(subject: object, *, wildcards: bool = True, what: str = "subject") -> str:
    """Return ``subject`` if valid, else raise SubjectError saying what is wrong."""
    if not isinstance(subject, str):
        raise SubjectError(f"{what} must be a string")
    if not subject:
        raise SubjectError(f"{what} is empty")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise SubjectError(f"{what} is longer than {MAX_SUBJECT_LENGTH} characters")
    if any(ch in _WHITESPACE for ch in subject):
        raise SubjectError(f"{what} {subject!r} contains whitespace")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in subject):
        raise SubjectError(f"{what} {subject!r} contains a control character")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in subject):
        raise SubjectError(f"{what} {subject!r} is not valid Unicode (lone surrogate)")
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token:
            raise SubjectError(f"{what} {subject!r} has an empty token")
        if token in ("*", ">"):
            if not wildcards:
                raise SubjectError(f"{what} {subject!r} may not contain wildcards")
            if token == ">" and i != len(tokens) - 1:
                raise SubjectError(f"{what} {subject!r}: '>' must be the last token")
        elif "*" in token or ">" in token:
            raise SubjectError(f"{what} {subject!r}: wildcards must be whole tokens")
    return subject


def has_wildcards(subject: str) -> bool:
    return any(t in ("*", ">") for t in subject.split("."))


def is_subset(subject: str, pattern: str) -> bool:
    """True if every subject ``subject`` can match is also matched by ``pattern``."""
    sub, pat = subject.split("."), pattern.split(".")
    for i, p in enumerate(pat):
        if p == ">":
            return len(sub) > i
        if i >= len(sub):
            return False
        s = sub[i]
        if s == ">":
            return False
        if p == "*":
            continue
        if s == "*" or s != p:
            return False
    return len(sub) == len(pat)


def overlaps(a: str, b: str) -> bool:
    """True if some literal subject matches both ``a`` and ``b``."""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == ">" or y == ">":
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != y and x != "*" and y != "*":
            return False
    return True
