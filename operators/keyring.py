"""Loads the seed encryption key ring from settings, or the embedded default's key file under var/."""

from __future__ import annotations

import functools
import logging
import os
import sys

from django.conf import settings

from operators.sealing import Keyring, generate_key_spec

logger = logging.getLogger(__name__)


@functools.cache
def keyring_get() -> Keyring:
    spec = settings.SEED_ENCRYPTION_KEYS
    if spec:
        return Keyring.parse(spec)
    path = settings.SEED_ENCRYPTION_KEY_FILE
    if not path.exists():
        # O_EXCL so two processes starting together cannot both write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(generate_key_spec() + "\n")
            print(
                f"natsctl: SEED_ENCRYPTION_KEYS is not set; generated a seed encryption key in {path} "
                "(embedded default; set SEED_ENCRYPTION_KEYS in production)",
                file=sys.stderr,
            )
    return Keyring.parse(path.read_text().strip())


def keyring_reset() -> None:
    """Forget the cached key ring (after SEED_ENCRYPTION_KEYS changes)."""
    keyring_get.cache_clear()
