"""Regions: a node's cluster name becomes its region (one NATS cluster per region, regions joined by gateways),
and every node gets a gateway port."""

from django.db import migrations, models
from django.db.models import Q


def gateway_ports(apps, schema_editor):
    """Existing nodes get a free gateway port of their host, above every port the fleet uses."""
    BrokerNode = apps.get_model("broker_gateway", "BrokerNode")
    taken: dict[str, set[int]] = {}
    for node in BrokerNode.objects.all():
        taken.setdefault(node.host, set()).update(
            (node.client_port, node.cluster_port, node.monitoring_port, node.leafnode_port))
    for index, node in enumerate(BrokerNode.objects.order_by("pk")):
        port = 7222 + index
        while port in taken[node.host]:
            port += 1
        taken[node.host].add(port)
        node.gateway_port = port
        node.region = node.region if node.region != "natsctl" else "us-east"
        node.save(update_fields=["gateway_port", "region"])


class Migration(migrations.Migration):
    dependencies = [("broker_gateway", "0001_initial")]

    operations = [
        migrations.RenameField("brokernode", "cluster", "region"),
        migrations.AlterField(
            "brokernode", "region",
            models.CharField(default="us-east", max_length=32,
                             help_text="the node's region: a NATS cluster of that name, joined to every other region "
                                       "by gateways"),
        ),
        migrations.AddField("brokernode", "gateway_port", models.PositiveIntegerField(default=0), preserve_default=False),
        migrations.RunPython(gateway_ports, migrations.RunPython.noop),
        migrations.RemoveConstraint("brokernode", "broker_gateway_brokernode_ports_in_range"),
        migrations.AddConstraint(
            "brokernode",
            models.CheckConstraint(
                condition=Q(client_port__lte=65535) & Q(cluster_port__lte=65535) & Q(monitoring_port__lte=65535)
                & Q(leafnode_port__lte=65535) & Q(gateway_port__lte=65535),
                name="broker_gateway_brokernode_ports_in_range"),
        ),
        migrations.AddIndex("brokernode", models.Index(fields=["region", "name"], name="broker_node_region_idx")),
    ]
