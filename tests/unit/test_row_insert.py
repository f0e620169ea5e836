"""core.db.row_insert: one new row written as ``Model.save(force_insert=True)`` writes it (the same columns and
values, read back through the ORM), on whichever database the tests run; what it cannot write exactly, the ORM
saves."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Value
from django.db.models.functions import Upper
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext

from accounts_service.models import AuditEvent, Team
from core.db import row_insert

pytestmark = pytest.mark.django_db

COLUMNS = ("team_id", "actor_id", "actor_name", "action", "target", "detail")


def _event(team: Team, **kwargs) -> AuditEvent:
    return AuditEvent(team=team, actor=None, actor_name="platform", action=AuditEvent.Action.USER_CREATE,
                      target="UABC", detail={"user": "u", "nested": [1, {"a": None}], "ok": True}, **kwargs)


def _row(pk: int) -> tuple:
    return AuditEvent.objects.filter(pk=pk).values_list(*COLUMNS, "at").get()


def test_the_row_is_the_one_the_orm_writes(team):
    fast, orm = _event(team), _event(team)
    with CaptureQueriesContext(connection) as queries:
        assert row_insert(fast) is fast
    orm.save(force_insert=True)
    assert len(queries) == 1 and queries[0]["sql"].startswith("INSERT INTO")
    assert fast.pk is not None and isinstance(fast.pk, int) and fast.pk != orm.pk
    assert not fast._state.adding and fast._state.db == "default"
    assert _row(fast.pk)[:-1] == _row(orm.pk)[:-1]
    assert _row(fast.pk)[-1] == fast.at and fast.at.tzinfo is not None  # auto_now_add, as the ORM sets it
    assert AuditEvent.objects.get(pk=fast.pk).detail == {"user": "u", "nested": [1, {"a": None}], "ok": True}


def test_a_constraint_still_refuses_the_row(team):
    event = _event(team)
    event.team_id = 10**9  # no such team: the foreign key refuses it at the insert or the commit
    with pytest.raises(IntegrityError), transaction.atomic():
        row_insert(event)
        connection.check_constraints()  # (both databases defer foreign keys to the commit; this checks them now)


def test_an_expression_a_saved_object_or_a_save_receiver_go_through_the_orm(team):
    event = row_insert(_event(team))
    with pytest.raises(TypeError, match="append-only"):  # the model's own save() still guards a saved row
        row_insert(event)
    event = _event(team)
    event.actor_name = Upper(Value("cli"))  # an expression: the ORM compiles it
    row_insert(event)
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "CLI"
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append((instance.pk, created))

    post_save.connect(receiver, sender=AuditEvent)
    try:
        event = row_insert(_event(team))
    finally:
        post_save.disconnect(receiver, sender=AuditEvent)
    assert heard == [(event.pk, True)]
