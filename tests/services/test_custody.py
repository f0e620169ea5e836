"""Key custody: seeds sealed at rest, bound to their row, re-wrappable; the identity seed kept offline."""

from __future__ import annotations

import os
import re
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from accounts_service import services
from accounts_service.rights import PLATFORM
from operators import nkeys, sealing
from operators.keyring import keyring_get, keyring_reset
from operators.models import Operator, SealedSeed
from operators.services import creds_render

SEED_RE = re.compile(rb"S[OAU][A-Z2-7]{56}")


def _candidates(blob: bytes) -> list[bytes]:
    """Every 58-character window that looks like a seed, overlapping ones included."""
    return [blob[m.start(): m.start() + 58] for m in re.finditer(rb"(?=S[OAU][A-Z2-7]{56})", blob)]


def _is_seed(candidate: bytes) -> bool:
    try:
        nkeys.from_seed(candidate)
    except nkeys.NKeyError:
        return False
    return True


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(os.environ.get("DATABASE_URL", "sqlite").split(":", 1)[0] != "sqlite",
                    reason="it scans the SQLite database file; sealing itself is tested in tests/unit/test_sealing.py")
def test_no_seed_appears_in_clear_in_the_database_file(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    users = [services.user_create(actor=PLATFORM, account=account, name=f"u{i}") for i in range(3)]
    seeds = {nkeys.from_seed(s.group()).public_key for u in users
             for s in [SEED_RE.search(services.user_creds_get(user=u).encode())]}
    assert seeds == {u.public_key for u in users}  # the creds do carry the seeds...
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(FULL)")
    db_path = Path(connection.settings_dict["NAME"])
    blobs = b"".join(p.read_bytes() for p in (db_path, Path(f"{db_path}-wal")) if p.exists())
    assert len(blobs) > 10_000 and account.public_key.encode() in blobs  # we are scanning the real file
    # ...but the database holds none in clear. The pattern can also match across neighbouring public keys,
    # so a candidate counts only if it decodes as a seed (checksum and all).
    assert [m for m in _candidates(blobs) if _is_seed(m)] == []
    assert _is_seed(SEED_RE.search(services.user_creds_get(user=users[0]).encode()).group())  # the check works


def test_operator_identity_seed_is_written_once_0600_and_not_stored(operator_setup):
    path = operator_setup.identity_seed_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    identity = nkeys.from_seed(path.read_text().strip(), nkeys.KeyType.OPERATOR)
    op = Operator.objects.get()
    assert identity.public_key == op.public_key and op.identity_seed is None
    assert not SealedSeed.objects.filter(public_key=op.public_key).exists()


def test_store_identity_key_keeps_it_sealed(db, tmp_path):
    from operators.services import operator_init

    result = operator_init(name="embedded", identity_seed_out=None, store_identity_key=True)
    assert result.identity_seed_path is None and result.operator.identity_seed.key_type == "O"


def test_sealed_seed_moved_to_another_row_does_not_open(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    a = services.user_create(actor=PLATFORM, account=account, name="a")
    b = services.user_create(actor=PLATFORM, account=account, name="b")
    sa, sb = SealedSeed.objects.get(public_key=a.public_key), SealedSeed.objects.get(public_key=b.public_key)
    SealedSeed.objects.filter(pk=sa.pk).update(sealed=sb.sealed)
    sa.refresh_from_db()
    with pytest.raises(sealing.SealError, match="does not open"):
        creds_render(user_seed=sa, jwt=a.jwt)


def test_rewrap_moves_every_seed_to_the_newest_key(operator_setup, team, settings):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    user = services.user_create(actor=PLATFORM, account=account, name="alice")
    old_creds = services.user_creds_get(user=user)
    old = keyring_get()
    old_spec = ",".join(f"{kid}:{__import__('base64').b64encode(k).decode()}" for kid, k in old.keys.items())
    new_spec = sealing.generate_key_spec("k-new")
    settings.SEED_ENCRYPTION_KEYS = f"{new_spec},{old_spec}"
    keyring_reset()
    try:
        assert SealedSeed.objects.exclude(key_id="k-new").exists()
        out = StringIO()
        call_command("seeds", "rewrap", stdout=out)
        assert "with key k-new" in out.getvalue()
        assert set(SealedSeed.objects.values_list("key_id", flat=True)) == {"k-new"}
        assert all(s.sealed.startswith("k-new$") for s in SealedSeed.objects.all())
        settings.SEED_ENCRYPTION_KEYS = new_spec  # the old key can now be retired
        keyring_reset()
        assert services.user_creds_get(user=user) == old_creds
    finally:
        keyring_reset()
