"""`.creds` files: a user JWT and its seed, byte-for-byte in the format of ``nsc generate creds`` (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from operators import nkeys
from operators.nkeys import KeyType, NKeyError

__all__ = ["SEED_PLACEHOLDER", "Creds", "CredsError", "creds_pairing_command", "format_creds", "format_creds_template",
           "parse_creds"]

# Where a tenant who keeps their own seed (a user created from their public key) puts it: not a seed (parse_creds
# refuses it, so a client given the template unfilled fails at once), and free of characters sed would read.
SEED_PLACEHOLDER = "PASTE-YOUR-USER-NKEY-SEED-HERE"

_TEMPLATE = (
    "-----BEGIN NATS USER JWT-----\n"
    "{jwt}\n"
    "------END NATS USER JWT------\n"
    "\n"
    "************************* IMPORTANT *************************\n"
    "NKEY Seed printed below can be used to sign and prove identity.\n"
    "NKEYs are sensitive and should be treated as secrets.\n"
    "\n"
    "-----BEGIN USER NKEY SEED-----\n"
    "{seed}\n"
    "------END USER NKEY SEED------\n"
    "\n"
    "*************************************************************\n"
)

# Same shape as nats-io/jwt's userConfigRE: a dashed header line, one token, a dashed footer line.
_BLOCK = re.compile(r"\s*(?:(?:-{3,}.*-{3,}\r?\n)([\w\-.=]+)(?:\r?\n-{3,}.*-{3,}(?:\r?\n|\Z)))")


class CredsError(ValueError):
    """A `.creds` file that cannot be written or read."""


@dataclass(frozen=True)
class Creds:
    jwt: str
    seed: str = field(repr=False)


def format_creds(jwt: str, seed: str) -> str:
    """The `.creds` text for a user JWT and that user's seed."""
    jwt, seed = jwt.strip(), seed.strip()
    if not seed.startswith("SU"):
        raise CredsError("the nkey seed is not a user seed")
    if jwt.count(".") != 2:
        raise CredsError("the JWT is malformed")
    return _TEMPLATE.format(jwt=jwt, seed=seed)


def format_creds_template(jwt: str) -> str:
    """The `.creds` layout with the user JWT filled in and ``SEED_PLACEHOLDER`` where the user's seed goes: what a
    tenant who kept the seed completes (``creds_pairing_command``) into a `.creds` equal to ``format_creds``."""
    jwt = jwt.strip()
    if jwt.count(".") != 2:
        raise CredsError("the JWT is malformed")
    return _TEMPLATE.format(jwt=jwt, seed=SEED_PLACEHOLDER)


def creds_pairing_command(*, template: str, seed_file: str, creds: str) -> str:
    """A POSIX shell one-liner that fills the template's placeholder with the seed read from ``seed_file`` (the
    ``SU...`` line that ``nk -gen user`` or nsc wrote) into ``creds``, created private (umask 077)."""
    return (f"(umask 077 && sed \"s/{SEED_PLACEHOLDER}/$(tr -d '[:space:]' < {seed_file})/\" "
            f"{template} > {creds})")


def parse_creds(text: str | bytes) -> Creds:
    """Read the JWT and the user seed out of `.creds` text; the seed must be a valid user seed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    items = _BLOCK.findall(text)
    if len(items) < 2:
        raise CredsError("no JWT and seed blocks found in the creds")
    jwt, seed = items[0], items[1]
    try:
        nkeys.from_seed(seed, KeyType.USER)
    except NKeyError as exc:
        raise CredsError(f"the creds seed is invalid: {exc}") from exc
    return Creds(jwt=jwt, seed=seed)
