"""`manage.py check --deploy` is clean with production settings (DJANGO_SECURE and a real secret key)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _check(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NATSCTL_VAR_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _check({"DJANGO_SECURE": "true", "DJANGO_DEBUG": "false",
                     "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
                     "DJANGO_ALLOWED_HOSTS": "nats.example.com"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_the_embedded_http_defaults(tmp_path):
    """The loopback default (plain http) is not a production configuration, and the check says so."""
    result = _check({"DJANGO_SECURE": "false"}, tmp_path)
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stdout + result.stderr


def test_a_secret_key_that_starts_with_a_dollar_sign_is_read_as_it_is(tmp_path):
    """django-environ took such a value for the name of another variable and recursed forever (one fresh
    checkout in 50 got a key like that from Django's generator)."""
    (tmp_path / "django-secret-key").write_text("$abc$def-not-a-variable")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    result = subprocess.run([sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = "
                             "'accounts_service.settings'; django.setup(); from django.conf import settings; "
                             "print(settings.SECRET_KEY)"], cwd=REPO, env={**env, "NATSCTL_VAR_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "$abc$def-not-a-variable"
