"""Node operators: the platform is the first one and runs every existing node (from the node's creation on)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import broker_gateway.models


def platform_runs_every_node(apps, schema_editor):
    NodeOperator = apps.get_model("broker_gateway", "NodeOperator")
    BrokerNode = apps.get_model("broker_gateway", "BrokerNode")
    NodeAssignment = apps.get_model("broker_gateway", "NodeAssignment")
    platform, _ = NodeOperator.objects.get_or_create(is_platform=True,
                                                     defaults={"slug": "platform", "name": "natsctl platform"})
    BrokerNode.objects.update(operator=platform)
    NodeAssignment.objects.bulk_create(
        NodeAssignment(node_name=node.name, operator=platform, since=node.created_at, actor_name="platform")
        for node in BrokerNode.objects.all())


class Migration(migrations.Migration):

    dependencies = [
        ("broker_gateway", "0002_regions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="NodeOperator",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("slug", models.SlugField(max_length=40, unique=True)),
                ("name", models.CharField(max_length=100)),
                ("is_platform", models.BooleanField(default=False)),
                ("contact_email", models.EmailField(blank=True, max_length=254)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("members", models.ManyToManyField(blank=True, related_name="node_operators",
                                                   to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-is_platform", "name"]},
        ),
        migrations.CreateModel(
            name="NodeAssignment",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("node_name", models.CharField(max_length=64)),
                ("since", models.DateTimeField()),
                ("actor_name", models.CharField(blank=True, max_length=150)),
                ("operator", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="assignments",
                                               to="broker_gateway.nodeoperator")),
            ],
            options={"ordering": ["node_name", "since", "pk"]},
        ),
        migrations.AddField(
            model_name="brokernode",
            name="operator",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="nodes",
                                    to="broker_gateway.nodeoperator"),
        ),
        migrations.RunPython(platform_runs_every_node, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="brokernode",
            name="operator",
            field=models.ForeignKey(default=broker_gateway.models.platform_operator_pk,
                                    help_text="who runs the node and is paid for it",
                                    on_delete=django.db.models.deletion.PROTECT, related_name="nodes",
                                    to="broker_gateway.nodeoperator"),
        ),
        migrations.AddConstraint(
            model_name="nodeoperator",
            constraint=models.UniqueConstraint(condition=models.Q(("is_platform", True)), fields=("is_platform",),
                                               name="broker_gateway_nodeoperator_one_platform"),
        ),
        migrations.AddIndex(
            model_name="nodeassignment",
            index=models.Index(fields=["node_name", "since"], name="broker_node_assignment_idx"),
        ),
    ]
