"""Existing deployments: the platform's ngs.usage export, and its import in every tenant account.

It signs JWTs, so it calls the service (with the current models) and only when an operator exists; a fresh
database has none, and ``manage.py collector`` ensures the same thing when it starts.
"""

from django.db import migrations


def usage_imports(apps, schema_editor):
    Operator = apps.get_model("operators", "Operator")
    if not Operator.objects.exists():
        return
    from accounts_service.services import usage_service_ensure

    usage_service_ensure()


class Migration(migrations.Migration):
    dependencies = [("accounts_service", "0003_web_signup_teams"), ("operators", "0001_initial"),
                    ("billing", "0002_plans")]
    operations = [migrations.RunPython(usage_imports, migrations.RunPython.noop)]
