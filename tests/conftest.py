from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from tests.factories import MembershipFactory, PracticeFactory
from trackstat.models import Role
from trackstat.services import api_key_create


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def practice(db):
    return PracticeFactory()


@pytest.fixture
def other_practice(db):
    return PracticeFactory(name="Other Practice")


@pytest.fixture
def member_client(db):
    """``member_client(role, practice=None)`` → a Client signed in as a new member."""

    def make(role: Role, practice=None) -> Client:
        membership = MembershipFactory(role=role, **({"practice": practice} if practice else {}))
        client = Client()
        client.force_login(membership.user)
        client.membership = membership
        return client

    return make


@pytest.fixture
def api(practice) -> Client:
    """A client authenticated with an API key of ``practice`` (an EMR connector)."""
    key = api_key_create(practice=practice, name="EMR").secret
    return Client(headers={"Authorization": f"Api-Key {key}"})
