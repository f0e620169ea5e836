"""Payout statements: one per period, with its lines and the invoices whose money it divides."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from payouts.shares import COMMUNITY, OPERATORS, PUBLISHERS


class PayoutStatement(models.Model):
    """What a period's collected revenue pays: 80 % to node operators pro rata to bytes carried, 10 % to publishers
    pro rata to measured use of their exports by other teams, 10 % to the community fund. Written once per period
    (the constraint: a second run writes nothing) and never changed."""

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3)
    collected_cents = models.BigIntegerField(help_text="what the invoices it collected were paid")
    operators_cents = models.BigIntegerField()
    publishers_cents = models.BigIntegerField()
    community_cents = models.BigIntegerField()
    operator_bytes = models.BigIntegerField(help_text="bytes tenant clients exchanged with the operators' nodes")
    publisher_msgs = models.BigIntegerField(help_text="messages other teams' accounts took through exports")
    publishers_unused = models.BooleanField(default=False, help_text="no export was used by another team: the "
                                                                     "publishers' share went to the community fund")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["period_start"], name="%(app_label)s_%(class)s_one_per_period"),
            models.CheckConstraint(
                condition=Q(collected_cents=F("operators_cents") + F("publishers_cents") + F("community_cents")),
                name="%(app_label)s_%(class)s_buckets_sum"),
            models.CheckConstraint(condition=Q(collected_cents__gt=0), name="%(app_label)s_%(class)s_revenue"),
        ]

    def __str__(self) -> str:
        return f"payouts {self.period_start:%Y-%m}"

    @property
    def period(self) -> str:
        return f"{self.period_start:%Y-%m}"


class PayoutLine(models.Model):
    """One payee's share: an operator (bytes its nodes carried), a publisher team (messages other teams took through
    its exports) or the community fund."""

    class Bucket(models.TextChoices):
        OPERATOR = OPERATORS
        PUBLISHER = PUBLISHERS
        COMMUNITY_FUND = COMMUNITY

    class Unit(models.TextChoices):
        BYTES = "bytes"
        MESSAGES = "messages"
        NONE = ""

    statement = models.ForeignKey(PayoutStatement, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveIntegerField()
    bucket = models.CharField(max_length=9, choices=Bucket.choices)
    operator = models.ForeignKey("broker_gateway.NodeOperator", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="payout_lines")
    team = models.ForeignKey("accounts_service.Team", on_delete=models.PROTECT, null=True, blank=True,
                             related_name="payout_lines")
    payee_name = models.CharField(max_length=100, help_text="the payee's name when the statement was written")
    basis_quantity = models.BigIntegerField()
    basis_unit = models.CharField(max_length=8, choices=Unit.choices, blank=True)
    cents = models.BigIntegerField()

    class Meta:
        ordering = ["statement", "position"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "position"], name="%(app_label)s_%(class)s_position"),
            models.UniqueConstraint(fields=["statement", "operator"], condition=Q(operator__isnull=False),
                                    name="%(app_label)s_%(class)s_one_per_operator"),
            models.UniqueConstraint(fields=["statement", "team"], condition=Q(team__isnull=False),
                                    name="%(app_label)s_%(class)s_one_per_team"),
            models.CheckConstraint(
                condition=(Q(bucket=OPERATORS, operator__isnull=False, team__isnull=True)
                           | Q(bucket=PUBLISHERS, operator__isnull=True, team__isnull=False)
                           | Q(bucket=COMMUNITY, operator__isnull=True, team__isnull=True)),
                name="%(app_label)s_%(class)s_payee_of_bucket"),
            models.CheckConstraint(condition=Q(cents__gte=0), name="%(app_label)s_%(class)s_cents"),
        ]

    def __str__(self) -> str:
        return f"{self.statement} #{self.position} {self.bucket} {self.payee_name}: {self.cents}"


class PayoutInvoice(models.Model):
    """An invoice whose payment a statement divided. The constraint makes every invoice's money paid out once:
    an invoice unpaid when its own period is paid out is collected by the period in which it is paid."""

    statement = models.ForeignKey(PayoutStatement, on_delete=models.PROTECT, related_name="collected")
    invoice = models.OneToOneField("billing.Invoice", on_delete=models.PROTECT, related_name="payout")
    cents = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.invoice_id} in {self.statement}"
