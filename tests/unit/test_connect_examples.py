"""The connect examples' subjects come from the user's own permissions: concrete subjects from the allow lists,
deny lists respected, only the parts that work, and request/reply only when its inbox rules allow it (pure)."""

from __future__ import annotations

import pytest

from broker_gateway.examples import example_snippets, example_subjects
from operators.subjects import is_subset, overlaps, validate_subject


def _may_pub(subject, allow=(), deny=()):
    return (not allow or any(is_subset(subject, a) for a in allow)) and not any(is_subset(subject, d) for d in deny)


def test_orders_only_user_gets_orders_subjects_and_a_round_trip():
    s = example_subjects(pub_allow=["orders.>"], sub_allow=["orders.>"])
    assert s.pub == "orders.demo" and s.sub == "orders.>" and s.round_trip
    assert not s.requester and "_INBOX.>" in " ".join(s.notes)  # it may not subscribe to its inbox


def test_everything_allowed_gets_a_default_subject_and_request_reply():
    s = example_subjects()
    assert s.pub == "demo.hello" and s.sub == "demo.>" and s.round_trip
    assert s.request == "demo.hello" and s.requester and s.responder and not s.notes


def test_star_wildcards_and_literals():
    assert example_subjects(pub_allow=["sensors.*.temp"]).pub == "sensors.demo.temp"
    assert example_subjects(pub_allow=["metrics"], sub_allow=["metrics"]).sub == "metrics"


def test_deny_lists_are_respected():
    s = example_subjects(pub_allow=["orders.>"], pub_deny=["orders.demo", "orders.example"],
                         sub_allow=["orders.>"], sub_deny=["orders.secret"])
    assert s.pub == "orders.test"
    # orders.> overlaps a denied subject: the example subscribes to something nothing denied is under.
    assert s.sub is not None and not overlaps(s.sub, "orders.secret") and is_subset(s.pub, s.sub)


def test_publish_only_and_subscribe_only_users_get_only_what_works():
    pub_only = example_subjects(pub_allow=["logs.>"], sub_deny=[">"])
    assert pub_only.pub == "logs.demo" and pub_only.sub is None and not pub_only.round_trip
    assert any("only publish" in n for n in pub_only.notes)
    sub_only = example_subjects(pub_deny=[">"], sub_allow=["feed.>"])
    assert sub_only.pub is None and sub_only.sub == "feed.>" and sub_only.request is None
    assert any("only subscribe" in n for n in sub_only.notes)


def test_request_reply_needs_the_inbox_and_the_responder_needs_allow_responses():
    requester = example_subjects(pub_allow=["svc.>"], sub_allow=["_INBOX.>"])
    assert requester.requester and not requester.responder and requester.request == "svc.demo"
    responder = example_subjects(pub_allow=["svc.>"], sub_allow=["svc.>"], allow_responses=True)
    assert responder.responder and not responder.requester


@pytest.mark.parametrize("perms", [
    {"pub_allow": ["a.>"], "sub_allow": ["b.*"]},
    {"pub_allow": ["$JS.API.>", "x.y"], "pub_deny": ["x.y"]},
    {"pub_allow": ["{{name()}}.>", "fixed.>"]},
    {"pub_deny": [">"], "sub_deny": [">"]},
])
def test_whatever_is_picked_is_valid_and_allowed(perms):
    s = example_subjects(**perms)
    if s.pub:
        validate_subject(s.pub, wildcards=False)
        assert _may_pub(s.pub, perms.get("pub_allow", ()), perms.get("pub_deny", ()))
        assert "{{" not in s.pub
    if s.sub:
        validate_subject(s.sub)


def test_every_snippet_uses_the_users_subjects_and_every_server():
    s = example_subjects(pub_allow=["orders.>"], sub_allow=["orders.>", "_INBOX.>"], allow_responses=True)
    servers = ["nats://eu.example:4222", "nats://us.example:4222"]
    snippets = example_snippets(servers=servers, creds_file="app.creds", context="shop", subjects=s)
    assert [x["id"] for x in snippets] == ["cli", "go", "js", "python", "java", "rust"]
    for snippet in snippets:
        code = snippet["code"]
        assert "orders.demo" in code and "orders.>" in code, snippet["id"]
        assert "greet." not in code and "app.creds" in code
        assert all(u in code for u in servers), snippet["id"]
    by_id = {x["id"]: x["code"] for x in snippets}
    assert "nats.UserCredentials(\"app.creds\")" in by_id["go"]
    assert "credsAuthenticator(readFileSync(\"app.creds\"))" in by_id["js"]
    assert "user_credentials=\"app.creds\"" in by_id["python"]
    assert ".authHandler(Nats.credentials(\"app.creds\"))" in by_id["java"]
    assert "ConnectOptions::with_credentials_file(\"app.creds\")" in by_id["rust"]


def test_a_publish_only_user_has_no_subscribe_in_any_snippet():
    s = example_subjects(pub_allow=["logs.>"], sub_deny=[">"])
    for snippet in example_snippets(servers=[], creds_file="u.creds", context="c", subjects=s):
        code = snippet["code"].lower()
        assert "subscribe" not in code and "nats sub" not in code, snippet["id"]
        assert "nats://HOST:4222".lower() in code
