"""The Django project and the tenant domain (teams, accounts, users, exports, imports, API tokens)."""

from accounts_service.celery import app as celery_app

__all__ = ["celery_app"]
