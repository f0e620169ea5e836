"""Fixtures of the web tests: a person who owns a team ("Acme", with its default account) and is logged in."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

PASSWORD = "a good pass 42!"


def person(email: str):
    """A verified person whose username is their email (as sign-up makes them)."""
    return get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)


@pytest.fixture
def owner(operator_setup):
    return person("owner@example.com")


@pytest.fixture
def shared(owner):
    """A team owned by ``owner`` with its default account."""
    from accounts_service.services import team_create

    return team_create(name="Acme", actor=owner, default_account=True)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
