"""Mail to people, rendered from a template and sent through Django's email backend (console by default)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string


def mail_send(*, to: str, subject: str, template: str, context: dict) -> None:
    send_mail(subject, render_to_string(template, context), settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
