"""The ledger's traffic by node and by export: what the payouts divide revenue by (docs/ECONOMICS.md).

Defined here and imported by billing.models, so the Django app is still ``billing``.
"""

from __future__ import annotations

from django.db import models


class NodeUsageHour(models.Model):
    """What one node carried for tenants' clients in one UTC hour, from the clients' point of view: the same deltas
    as UsageHour, summed by the server that counted them, over every account but the platform's own (the system
    account, whose traffic is the control plane's polling, and the platform team's). ``node`` is the nats-server's
    ``server_name``, which is the BrokerNode's name: it outlives the server id, which changes on every start."""

    node = models.CharField(max_length=64)
    hour = models.DateTimeField()
    sent_msgs = models.BigIntegerField(default=0)
    sent_bytes = models.BigIntegerField(default=0)
    received_msgs = models.BigIntegerField(default=0)
    received_bytes = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "hour"], name="%(app_label)s_%(class)s_one"),
        ]
        indexes = [models.Index(fields=["hour"], name="billing_nodeusagehour_hour")]

    def __str__(self) -> str:
        return f"{self.node} {self.hour:%Y-%m-%d %H}:00"


class ExportUseCounter(models.Model):
    """The last message count a server reported for one subscription that carries an export to another account
    (SUBSZ ``msgs``): the importer's service-import subscription, or the shadow subscription of an importer's
    stream subscription in the exporter's account. ``account_public_key`` is the account whose SUBSZ listed it.
    A cid is never reused while a server runs, and a restarted server has a new id, so a new key starts at 0."""

    server_id = models.CharField(max_length=64)
    account_public_key = models.CharField(max_length=56)
    cid = models.BigIntegerField()
    sid = models.CharField(max_length=64)
    subject = models.CharField(max_length=512)
    seq = models.BigIntegerField(help_text="the server's sequence number of the reply it came in")
    msgs = models.BigIntegerField()
    observed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["server_id", "account_public_key", "cid", "sid", "subject"],
                                    name="%(app_label)s_%(class)s_one"),
        ]
        indexes = [models.Index(fields=["observed_at"], name="billing_exportuse_observed")]

    def __str__(self) -> str:
        return f"{self.account_public_key[:8]}… {self.subject} cid {self.cid} sid {self.sid}: {self.msgs}"


class ExportUseHour(models.Model):
    """Messages that crossed from ``exporter_public_key``'s export to ``importer_public_key`` in one UTC hour:
    requests the importer's clients sent into a service import, or messages of a stream delivered to the
    importer's subscriptions. Measured by the servers (SUBSZ), never declared."""

    class Kind(models.TextChoices):
        SERVICE = "service"
        STREAM = "stream"

    exporter_public_key = models.CharField(max_length=56)
    export_subject = models.CharField(max_length=512)
    importer_public_key = models.CharField(max_length=56)
    kind = models.CharField(max_length=7, choices=Kind.choices)
    hour = models.DateTimeField()
    msgs = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exporter_public_key", "export_subject", "importer_public_key", "hour"],
                                    name="%(app_label)s_%(class)s_one"),
        ]
        indexes = [models.Index(fields=["hour"], name="billing_exportusehour_hour")]

    def __str__(self) -> str:
        return f"{self.export_subject} -> {self.importer_public_key[:8]}… {self.hour:%Y-%m-%d %H}:00 {self.msgs}"
