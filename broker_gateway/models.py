"""Broker nodes as desired state, who runs them (node operators), and what each node is known to hold."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

PLATFORM_OPERATOR_SLUG = "platform"


class NodeOperator(models.Model):
    """An organisation that runs broker nodes and is paid for the traffic they carry (docs/ECONOMICS.md). The
    platform is the first one; staff register the others and assign nodes to them. Its members (Django users,
    added by staff) see its payout statement."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    is_platform = models.BooleanField(default=False)
    contact_email = models.EmailField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="node_operators", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_platform", "name"]
        constraints = [
            models.UniqueConstraint(fields=["is_platform"], condition=Q(is_platform=True),
                                    name="%(app_label)s_%(class)s_one_platform"),
        ]

    def __str__(self) -> str:
        return self.name


def platform_operator_pk() -> int:
    """The platform's own operator (made on first use): a node added without one is the platform's."""
    operator, _ = NodeOperator.objects.get_or_create(
        is_platform=True, defaults={"slug": PLATFORM_OPERATOR_SLUG, "name": "natsctl platform"})
    return operator.pk


class BrokerNode(models.Model):
    """One nats-server of the fleet: what we want (desired state) and what the supervisor last saw."""

    class Desired(models.TextChoices):
        RUNNING = "running"
        STOPPED = "stopped"

    class Observed(models.TextChoices):
        STARTING = "starting"
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"
        FAILED = "failed"
        STOPPING = "stopping"
        STOPPED = "stopped"

    name = models.CharField(max_length=64, unique=True)
    region = models.CharField(max_length=32, default="us-east",
                              help_text="the node's region: a NATS cluster of that name, joined to every other "
                                        "region by gateways")
    host = models.CharField(max_length=255, default="127.0.0.1")
    client_port = models.PositiveIntegerField()
    cluster_port = models.PositiveIntegerField()
    monitoring_port = models.PositiveIntegerField()
    leafnode_port = models.PositiveIntegerField()
    gateway_port = models.PositiveIntegerField()
    extra_config = models.TextField(blank=True, help_text="appended to the rendered config (operator's own settings)")
    operator = models.ForeignKey(NodeOperator, on_delete=models.PROTECT, related_name="nodes",
                                 default=platform_operator_pk, help_text="who runs the node and is paid for it")

    desired_state = models.CharField(max_length=16, choices=Desired.choices, default=Desired.RUNNING)
    observed_state = models.CharField(max_length=16, choices=Observed.choices, default=Observed.STOPPED)
    pid = models.PositiveIntegerField(null=True, blank=True)
    server_id = models.CharField(max_length=56, blank=True)
    version = models.CharField(max_length=32, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_healthy_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="last full sync from the control plane")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["region", "name"], name="broker_node_region_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(client_port__lte=65535) & Q(cluster_port__lte=65535) & Q(monitoring_port__lte=65535)
                & Q(leafnode_port__lte=65535) & Q(gateway_port__lte=65535),
                name="%(app_label)s_%(class)s_ports_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.observed_state})"

    @property
    def client_url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def cluster_url(self) -> str:
        return f"nats://{self.host}:{self.cluster_port}"

    @property
    def gateway_url(self) -> str:
        return f"nats://{self.host}:{self.gateway_port}"

    @property
    def leafnode_url(self) -> str:
        return f"nats-leaf://{self.host}:{self.leafnode_port}"

    @property
    def monitoring_url(self) -> str:
        return f"http://{self.host}:{self.monitoring_port}"

    @property
    def ports(self) -> tuple[int, int, int, int, int]:
        return (self.client_port, self.cluster_port, self.monitoring_port, self.leafnode_port, self.gateway_port)


class NodeAssignment(models.Model):
    """From ``since`` on, the node named ``node_name`` is run by ``operator``: the history the payouts read, so an
    hour of traffic goes to whoever ran the node then, even after the node is reassigned or removed."""

    node_name = models.CharField(max_length=64)
    operator = models.ForeignKey(NodeOperator, on_delete=models.PROTECT, related_name="assignments")
    since = models.DateTimeField()
    actor_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["node_name", "since", "pk"]
        indexes = [models.Index(fields=["node_name", "since"], name="broker_node_assignment_idx")]

    def __str__(self) -> str:
        return f"{self.node_name} -> {self.operator_id} since {self.since:%Y-%m-%d %H:%M}"


class NodeClaim(models.Model):
    """The account JWT a node acknowledged (or a LOOKUP showed) it holds."""

    account = models.ForeignKey("accounts_service.Account", on_delete=models.CASCADE, related_name="node_claims")
    node = models.ForeignKey(BrokerNode, on_delete=models.CASCADE, related_name="claims")
    jti = models.CharField(max_length=64)
    iat = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "node"], name="%(app_label)s_%(class)s_one_per_account_node"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id}:{self.account_id}@{self.iat}"
