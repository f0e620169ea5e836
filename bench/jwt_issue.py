"""User JWT issuance rate: our code against raw PyNaCl ed25519 signing over the same bytes.

Run from the repo root::

    .venv/bin/python bench/jwt_issue.py            # full run (~30 s)
    .venv/bin/python bench/jwt_issue.py --quick    # short run (a few seconds)

Three figures, all in this one process:

1. ours: user JWTs per second through ``operators.claims.encode`` (claims built with ``user_nats``,
   signed by an account signing key from ``operators.nkeys.generate``), each JWT for a distinct
   user public key never seen before (pre-generated, outside the timing);
2. raw (the floor): ``nacl.signing.SigningKey(seed).sign(msg)`` per second, where ``msg`` is the
   exact JWT signing input (``header_b64 + "." + payload_b64``) of a JWT issued by (1), signed with
   the same seed — the ed25519 work every issued JWT has to pay for and nothing else;
3. informational: ``accounts_service.services.user_create`` per second through Django + SQLite in a
   throw-away directory (generates the user key, seals its seed, opens the signing key's sealed
   seed, signs, writes the rows).

(1) and (2) run in interleaved rounds (alternating which goes first) and the median of the rounds
is reported. The target is ours / raw >= 0.5. This is a measurement, not a test: it exits 0 and
prints PASS or FAIL against the target.
"""

from __future__ import annotations

import argparse
import base64
import gc
import itertools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import jwt  # noqa: E402  (PyJWT, which claims.decode verifies with; reported for the record)
import nacl  # noqa: E402
import nacl.signing  # noqa: E402

from operators import claims, nkeys  # noqa: E402

TARGET_RATIO = 0.5
IAT = 1_700_000_000  # fixed, so every issued JWT has the same shape and size


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------


def _run(fn: Callable[[int], object], n: int) -> float:
    """Seconds for ``n`` calls of ``fn(i)``."""
    gc.collect()
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - t0


def _calibrate(fn: Callable[[int], object], seconds: float) -> int:
    """A call count that takes about ``seconds`` (after a warm-up)."""
    n = 64
    while True:
        elapsed = _run(fn, n)
        if elapsed >= 0.1:
            return max(1, int(n * seconds / elapsed))
        n *= 4


def _interleaved(a: Callable[[int], object], na: int, b: Callable[[int], object], nb: int, rounds: int):
    """Rates (calls/s) of ``na`` calls of ``a`` and ``nb`` of ``b`` per round, alternating which runs first."""
    rates_a: list[float] = []
    rates_b: list[float] = []
    for r in range(rounds):
        order = ((a, na, rates_a), (b, nb, rates_b))
        for fn, n, rates in order if r % 2 == 0 else reversed(order):
            rates.append(n / _run(fn, n))
    return rates_a, rates_b


def _fmt(rate: float) -> str:
    return f"{rate:,.0f}"


# ---------------------------------------------------------------------------------------------
# 1 + 2: our encode vs raw PyNaCl signing
# ---------------------------------------------------------------------------------------------


def _raw_seed(seed: str) -> bytes:
    """The 32 raw ed25519 seed bytes of an encoded nkey seed (2 prefix bytes, 2 CRC bytes around it)."""
    return base64.b32decode(seed + "=" * (-len(seed) % 8))[2:-2]


def _fresh_user() -> str:
    return nkeys.public_key_from_raw(nkeys.KeyType.USER, os.urandom(32))


def bench_signing(rounds: int, seconds: float, profile: bool = False) -> dict:
    account = nkeys.generate(nkeys.KeyType.ACCOUNT)
    signer = nkeys.generate(nkeys.KeyType.ACCOUNT)  # the account's signing key
    account_pub = account.public_key
    # Every timed JWT gets a user subject never seen before, as when users are created, so that no
    # per-key cache can flatter the figure. Any 32 bytes make a well-formed user public key.
    subjects: Iterator[str] = itertools.cycle([_fresh_user() for _ in range(1024)])  # for calibration

    def ours(_i: int) -> str:
        return claims.encode(
            claims.USER,
            subject=next(subjects),
            name="bench-user",
            signer=signer,
            iat=IAT,
            nats=claims.user_nats(
                permissions=claims.Permissions(
                    pub=claims.Permission(allow=("foo.>",)), sub=claims.Permission(allow=("foo.>",))
                ),
                limits=claims.UserLimits(),
                issuer_account=account_pub,
            ),
        )

    # A representative issued JWT: its signing input is what the raw floor signs.
    token = ours(0)
    signing_input, _, sig_b64 = token.rpartition(".")
    msg = signing_input.encode("ascii")
    raw_key = nacl.signing.SigningKey(_raw_seed(signer.seed))
    # Same key, same bytes: ed25519 is deterministic, so the signatures must be identical.
    assert base64.urlsafe_b64encode(raw_key.sign(msg).signature).rstrip(b"=").decode() == sig_b64
    decoded = claims.decode(token, expected_type=claims.USER)
    assert decoded.issuer == signer.public_key and decoded.issuer_account == account_pub

    def raw(_i: int) -> object:
        return raw_key.sign(msg)

    n_ours, n_raw = _calibrate(ours, seconds), _calibrate(raw, seconds)
    subjects = iter([_fresh_user() for _ in range(n_ours * rounds)])
    ours_rates, raw_rates = _interleaved(ours, n_ours, raw, n_raw, rounds)
    if profile:
        import cProfile
        import pstats

        subjects = iter([_fresh_user() for _ in range(n_ours)])
        profiler = cProfile.Profile()
        profiler.runcall(_run, ours, n_ours)
        print(f"cProfile of {n_ours} user JWTs through claims.encode (top 15 by own time):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    ours_med, raw_med = statistics.median(ours_rates), statistics.median(raw_rates)
    round_ratios = [o / r for o, r in zip(ours_rates, raw_rates, strict=True)]
    return {
        "jwt_bytes": len(token),
        "msg_bytes": len(msg),
        "n_ours": n_ours,
        "n_raw": n_raw,
        "ours_rates": ours_rates,
        "raw_rates": raw_rates,
        "ours": ours_med,
        "raw": raw_med,
        # Each round's two runs are adjacent in time, so the median of the per-round ratios cancels
        # load drift on a shared machine better than the ratio of the two medians (also printed).
        "ratio": statistics.median(round_ratios),
        "ratio_of_medians": ours_med / raw_med,
        "round_ratios": round_ratios,
    }


# ---------------------------------------------------------------------------------------------
# 3: the service path through Django + SQLite (informational)
# ---------------------------------------------------------------------------------------------


def bench_service(rounds: int, seconds: float, var_dir: Path) -> dict:
    # Everything in a throw-away directory: its own SQLite file and seed-encryption key, whatever the
    # calling environment says (a benchmark must never write to a real database).
    from operators.sealing import generate_key_spec

    os.environ["DJANGO_SETTINGS_MODULE"] = "accounts_service.settings"
    os.environ["NATSCTL_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"
    os.environ["SEED_ENCRYPTION_KEYS"] = generate_key_spec("bench")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.core.management import call_command

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    migrate_s = time.perf_counter() - t0

    from accounts_service import services as acc_services
    from accounts_service.rights import PLATFORM
    from operators import services as op_services

    op_services.operator_init(name="bench", identity_seed_out=None, store_identity_key=True)
    acc_services.system_account_ensure()
    team = acc_services.team_create(actor=PLATFORM, name="bench")
    account = acc_services.account_create(actor=PLATFORM, team=team, name="bench")

    counter = iter(range(10**9))

    def user_create(_i: int) -> object:
        return acc_services.user_create(
            actor=PLATFORM,
            account=account, name=f"u{next(counter)}", pub_allow=["foo.>"], sub_allow=["foo.>"]
        )

    user = user_create(0)
    assert claims.decode(user.jwt, expected_type=claims.USER).issuer_account == account.public_key

    # Fewer rounds than the signing comparison: the table grows as we go, and this is informational.
    n = _calibrate(user_create, seconds)
    rates = [n / _run(user_create, n) for _ in range(rounds)]
    from accounts_service.models import NatsUser

    return {
        "migrate_s": migrate_s,
        "n": n,
        "rates": rates,
        "rate": statistics.median(rates),
        "users": NatsUser.objects.count(),
    }


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (3 rounds of ~0.2 s)")
    parser.add_argument("--rounds", type=int, help="rounds per measurement (default 5, --quick 3)")
    parser.add_argument("--seconds", type=float, help="seconds per round (default 1.0, --quick 0.2)")
    parser.add_argument("--no-service", action="store_true", help="skip the Django + SQLite user_create figure")
    parser.add_argument("--profile", action="store_true", help="also cProfile our issuance path and print the top")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    seconds = args.seconds or (0.2 if args.quick else 1.0)

    print("JWT issuance benchmark (bench/jwt_issue.py)")
    print(f"  Python {platform.python_version()} ({platform.python_implementation()}), "
          f"PyNaCl {nacl.__version__}, PyJWT {jwt.__version__}")
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    print(f"  {platform.machine()}, {os.cpu_count()} CPUs{load}; {rounds} interleaved rounds of ~{seconds:g} s, median")
    print()

    t_start = time.perf_counter()
    s = bench_signing(rounds, seconds, profile=args.profile)
    verdict = "PASS" if s["ratio"] >= TARGET_RATIO else "FAIL"
    print(f"User JWT ({s['jwt_bytes']} bytes; signing input {s['msg_bytes']} bytes)")
    print(f"  ours  claims.encode(USER, ...)        {_fmt(s['ours']):>10} JWTs/s        "
          f"(N={s['n_ours']}/round; rounds: {', '.join(_fmt(r) for r in s['ours_rates'])})")
    print(f"  raw   nacl SigningKey.sign(same msg) {_fmt(s['raw']):>10} signatures/s  "
          f"(N={s['n_raw']}/round; rounds: {', '.join(_fmt(r) for r in s['raw_rates'])})")
    print(f"  ratio ours/raw                       {s['ratio']:>10.3f}   "
          f"(median of per-round ratios: {', '.join(f'{r:.3f}' for r in s['round_ratios'])}; "
          f"ratio of medians {s['ratio_of_medians']:.3f})")
    print(f"  target >= {TARGET_RATIO}: {verdict}")
    print(f"  per JWT: ours {1e6 / s['ours']:.1f} us, raw signature {1e6 / s['raw']:.1f} us, "
          f"overhead {1e6 / s['ours'] - 1e6 / s['raw']:.1f} us")
    print()

    if not args.no_service:
        var_dir = Path(tempfile.mkdtemp(prefix="natsctl-bench-"))
        try:
            svc = bench_service(rounds, seconds, var_dir)
        finally:
            shutil.rmtree(var_dir, ignore_errors=True)
        print("Service path, informational (Django + SQLite in a temp dir)")
        print(f"  accounts_service.services.user_create {_fmt(svc['rate']):>8} users/s   "
              f"(N={svc['n']}/round; rounds: {', '.join(_fmt(r) for r in svc['rates'])}; "
              f"{svc['users']} users at the end)")
        print(f"  per user: {1e3 / svc['rate']:.2f} ms; = {svc['rate'] / s['raw']:.3f} of the raw signing rate "
              f"(migrate took {svc['migrate_s']:.1f} s, not counted)")
        print()

    print(f"RESULT ratio={s['ratio']:.3f} target={TARGET_RATIO} {verdict}  "
          f"(ours {_fmt(s['ours'])} JWTs/s, raw {_fmt(s['raw'])} sig/s; total {time.perf_counter() - t_start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
