"""Billing: plans, the usage ledger (ingested samples, per-server counters, hourly rollups)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from accounts_service.models import LIMIT_FIELDS
from billing.metering import SampleKind
from billing.pricing import Kind as PricedKind
from billing.pricing import Rates
from operators.claims import JwtError, jetstream_tenant_limits

# ------------------------------------------------------------------------------------------------
# Plans
# ------------------------------------------------------------------------------------------------


class Plan(models.Model):
    """A plan as data (staff-editable): the limits compiled into its accounts' JWTs, and its price."""

    name = models.SlugField(max_length=32, unique=True)
    title = models.CharField(max_length=64)
    sort_order = models.PositiveSmallIntegerField(default=0)
    conn = models.BigIntegerField(help_text="client connections per account (-1 unlimited)")
    payload = models.BigIntegerField(help_text="max message payload bytes")
    subs = models.BigIntegerField(help_text="subscriptions per account")
    leaf = models.BigIntegerField(help_text="leafnode connections")
    imports = models.BigIntegerField(default=25)
    exports = models.BigIntegerField(default=25)
    mem_storage = models.BigIntegerField(default=0, help_text="JetStream memory bytes")
    disk_storage = models.BigIntegerField(help_text="JetStream disk bytes")
    streams = models.BigIntegerField(default=5)
    consumer = models.BigIntegerField(default=50)
    accounts_per_team = models.IntegerField(help_text="accounts a team may have on this plan (-1 unlimited)")
    data_bytes = models.BigIntegerField(help_text="monthly data allowance, sent + received bytes (-1 unlimited)")
    base_price_cents = models.PositiveIntegerField(default=0, help_text="per month, in the billing currency's "
                                                                        "minor unit (cents)")
    overage_cents_per_gib = models.PositiveIntegerField(default=0, help_text="data past the allowance, cents per GiB; "
                                                                             "0: no overage, suspend at 100%")
    connection_hours = models.BigIntegerField(default=-1, help_text="monthly connection-hours included (-1 "
                                                                    "unlimited)")
    connection_cents_per_1000_hours = models.PositiveIntegerField(
        default=0, help_text="connection-hours past the allowance, cents per 1,000; 0: not priced")
    storage_gib_hours = models.BigIntegerField(default=-1, help_text="monthly JetStream GiB-hours included (every "
                                                                     "replica; -1 unlimited)")
    storage_cents_per_1000_gib_hours = models.PositiveIntegerField(
        default=0, help_text="JetStream GiB-hours past the allowance, cents per 1,000; 0: not priced")

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        """Ceilings the server can express: 0 consumers while the plan's JetStream is on is read as unlimited by
        nats-server (operators.claims.jetstream_tenant_limits), so a plan may not grant streams but no consumers."""
        try:
            jetstream_tenant_limits(mem_storage=self.mem_storage, disk_storage=self.disk_storage,
                                    streams=self.streams, consumer=self.consumer)
        except JwtError as exc:
            raise ValidationError({"consumer": str(exc)}) from exc
        errors = {}
        for allowance, price in (("data_bytes", "overage_cents_per_gib"), ("connection_hours",
                                 "connection_cents_per_1000_hours"), ("storage_gib_hours",
                                                                       "storage_cents_per_1000_gib_hours")):
            if getattr(self, allowance) < -1:
                errors[allowance] = "-1 (unlimited), 0 or more"
            elif getattr(self, allowance) == -1 and getattr(self, price):
                errors[price] = f"an unlimited {allowance} leaves nothing to price: set an allowance (0 bills every " \
                                "unit) or a price of 0"
        if errors:
            raise ValidationError(errors)

    def rates(self) -> Rates:
        """The plan's prices and allowances as the pure pricing code takes them."""
        return Rates(plan=self.name, title=self.title, base_cents=self.base_price_cents, data_bytes=self.data_bytes,
                     data_cents_per_gib=self.overage_cents_per_gib, connection_hours=self.connection_hours,
                     connection_cents_per_1000_hours=self.connection_cents_per_1000_hours,
                     storage_gib_hours=self.storage_gib_hours,
                     storage_cents_per_1000_gib_hours=self.storage_cents_per_1000_gib_hours)

    def account_limits(self) -> dict[str, int]:
        """The limits an account on this plan gets, by the account model's field names. The JWT's ``data`` limit
        stays -1: the monthly allowance (``data_bytes``) is metered and enforced by the control plane."""
        return {field: -1 if field == "data" else getattr(self, field) for field in LIMIT_FIELDS}


# ------------------------------------------------------------------------------------------------
# Ledger
# ------------------------------------------------------------------------------------------------


class MeterSample(models.Model):
    """One ingested connection end (a DISCONNECT event). Its key (the server id, the server's sequence number and
    the event id) is held by a constraint, so an event replayed or delivered twice counts once. Counters and stored
    bytes are claimed otherwise (their sequence number or time in ``ServerAccountCounter`` / ``AccountStorage``:
    billing.services); rows of other kinds written before that are kept and read by nothing."""

    key = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=[(kind.value, kind.name.replace("_", " ").capitalize())
                                                    for kind in SampleKind])
    account_public_key = models.CharField(max_length=56, db_index=True)
    server_id = models.CharField(max_length=64)
    observed_at = models.DateTimeField()
    ingested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "account_public_key"], name="%(app_label)s_%(class)s_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class ServerAccountCounter(models.Model):
    """The last applied cumulative counters of one account on one server (a server id lives until restart)."""

    server_id = models.CharField(max_length=64)
    server_name = models.CharField(max_length=64, blank=True)
    account_public_key = models.CharField(max_length=56, db_index=True)
    seq = models.BigIntegerField()
    observed_at = models.DateTimeField()
    sent_msgs = models.BigIntegerField(default=0)
    sent_bytes = models.BigIntegerField(default=0)
    received_msgs = models.BigIntegerField(default=0)
    received_bytes = models.BigIntegerField(default=0)
    conns = models.IntegerField(default=0)
    leafnodes = models.IntegerField(default=0, help_text="the account's leafnode connections (tenants' own servers)")
    resets = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["server_id", "account_public_key"], name="%(app_label)s_%(class)s_one"),
        ]

    def __str__(self) -> str:
        return f"{self.account_public_key[:8]}… on {self.server_name or self.server_id[:8]}"


class AccountStorage(models.Model):
    """The JetStream bytes an account stores (memory plus file, every replica) at the last observation. Each
    clustered server reports the account's usage cluster-wide, so this is kept per account, not per server."""

    account_public_key = models.CharField(max_length=56, unique=True)
    bytes = models.BigIntegerField()
    observed_at = models.DateTimeField()
    server_name = models.CharField(max_length=64, blank=True, help_text="the server that reported it last")

    def __str__(self) -> str:
        return f"{self.account_public_key[:8]}… {self.bytes} B"


class UsageCounts(models.Model):
    """What an account's clients did in a span of time (an hour, a day, a month): the same columns at every grain."""

    sent_msgs = models.BigIntegerField(default=0)
    sent_bytes = models.BigIntegerField(default=0)
    received_msgs = models.BigIntegerField(default=0)
    received_bytes = models.BigIntegerField(default=0)
    connection_seconds = models.FloatField(default=0)
    peak_connections = models.IntegerField(default=0)
    storage_byte_seconds = models.BigIntegerField(default=0, help_text="JetStream bytes stored (every replica) "
                                                                      "times seconds")

    class Meta:
        abstract = True


class UsageHour(UsageCounts):
    """An account's usage in one UTC hour, from its clients' point of view."""

    account_public_key = models.CharField(max_length=56)
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account_public_key", "hour"], name="%(app_label)s_%(class)s_one"),
        ]
        indexes = [models.Index(fields=["hour"], name="billing_usagehour_hour")]

    def __str__(self) -> str:
        return f"{self.account_public_key[:8]}… {self.hour:%Y-%m-%d %H}:00"


class UsageDay(UsageCounts):
    """The sum of an account's hours in one UTC day (peak: their maximum), kept in the transaction that writes the
    hours (billing.services), so a window of days reads one row a day instead of 24."""

    account_public_key = models.CharField(max_length=56)
    day = models.DateTimeField(help_text="00:00 UTC of the day")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account_public_key", "day"], name="%(app_label)s_%(class)s_one"),
        ]

    def __str__(self) -> str:
        return f"{self.account_public_key[:8]}… {self.day:%Y-%m-%d}"


class UsageMonth(UsageCounts):
    """The sum of an account's hours in one calendar month (UTC), kept like UsageDay."""

    account_public_key = models.CharField(max_length=56)
    month = models.DateTimeField(help_text="the 1st of the month, 00:00 UTC")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account_public_key", "month"], name="%(app_label)s_%(class)s_one"),
        ]

    def __str__(self) -> str:
        return f"{self.account_public_key[:8]}… {self.month:%Y-%m}"


# ------------------------------------------------------------------------------------------------
# Quotas
# ------------------------------------------------------------------------------------------------


class QuotaNotice(models.Model):
    """A threshold (80, 90 or 100 % of the plan's monthly data) an account crossed in a billing period; the
    constraint makes each warning go out once per period."""

    account_public_key = models.CharField(max_length=56)
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    used_bytes = models.BigIntegerField()
    data_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account_public_key", "period_start", "threshold"],
                                    name="%(app_label)s_%(class)s_once"),
        ]

    def __str__(self) -> str:
        return f"{self.account_public_key[:8]}… {self.threshold}% ({self.period_start:%Y-%m})"


# ------------------------------------------------------------------------------------------------
# Invoices
# ------------------------------------------------------------------------------------------------


class Invoice(models.Model):
    """A team's monthly invoice, billed in arrears: one per team and period (the constraint makes generating it
    twice give one invoice). Immutable once issued, except for its payment status."""

    class Status(models.TextChoices):
        OPEN = "open"  # issued, awaiting payment through the provider
        PAID = "paid"
        VOID = "void"

    team = models.ForeignKey("accounts_service.Team", on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, unique=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3, default="USD")
    total_cents = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    provider = models.CharField(max_length=32, blank=True)
    provider_reference = models.CharField(max_length=128, blank=True)
    issued_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "period_start"], name="%(app_label)s_%(class)s_one"),
        ]
        ordering = ["-period_start", "team_id"]

    def __str__(self) -> str:
        return self.number


class InvoiceLine(models.Model):
    """One line: a plan's base price for the seconds an account held it in the period, or one priced dimension's
    use past the plan's allowance (prorated the same way). ``measured``, ``included`` and ``billed`` are exact
    integers in the kind's base unit (billing.pricing.METERS); ``quantity`` is ``billed`` shown in the priced unit,
    to 6 decimals; ``amount_cents`` was rounded once, half up, from the exact figures."""

    class Kind(models.TextChoices):  # the values of billing.pricing.Kind
        BASE = PricedKind.BASE.value, "Base price"
        DATA = PricedKind.DATA.value, "Data"
        CONNECTIONS = PricedKind.CONNECTIONS.value, "Connection-hours"
        STORAGE = PricedKind.STORAGE.value, "JetStream storage"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    account_public_key = models.CharField(max_length=56)
    account_name = models.CharField(max_length=64)
    plan = models.CharField(max_length=32)
    description = models.CharField(max_length=200)
    starts_at = models.DateTimeField(help_text="when the account started holding the plan in the period")
    ends_at = models.DateTimeField(help_text="when it stopped (or the period's end)")
    measured = models.BigIntegerField(help_text="seconds held (base), bytes (data), connection-seconds, "
                                                "byte-seconds (storage)")
    included = models.BigIntegerField(help_text="the allowance prorated to the time held, same unit (-1 unlimited)")
    billed = models.BigIntegerField(help_text="what was priced, same unit: measured past included; seconds held")
    quantity = models.DecimalField(max_digits=24, decimal_places=6,
                                   help_text="billed in the priced unit: months, GiB, connection-hours, GiB-hours")
    unit_cents = models.PositiveIntegerField(help_text="per month, per GiB, per 1,000 connection- or GiB-hours")
    amount_cents = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="%(app_label)s_%(class)s_position"),
        ]
        ordering = ["invoice", "position"]

    def __str__(self) -> str:
        return f"{self.invoice.number} #{self.position}"



# The ledger's traffic by node and by export (the payouts' bases) lives in its own module.
from billing.models_traffic import ExportUseCounter, ExportUseHour, NodeUsageHour  # noqa: E402, F401


class LedgerLease(models.Model):
    """A ledger writer's claim on its scope (a partition of the accounts): every metering transaction raises the
    version of the scope it writes (one without a scope raises them all), so a writer that cached its counter rows
    knows whether anyone else wrote them since (billing.counters)."""

    scope = models.CharField(max_length=64, unique=True)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.scope} v{self.version}"
