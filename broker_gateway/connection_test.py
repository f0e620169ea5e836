"""The connect page's "test connection": connect as a user from the control plane, try the examples' subjects, and
say plainly what the servers answered (audited like the other uses of a user's credentials)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from accounts_service.models import AuditEvent, NatsUser
from accounts_service.rights import member_required
from accounts_service.services import audit_record, user_creds_get
from broker_gateway import nats_client
from broker_gateway.examples import ExampleSubjects, example_subjects
from broker_gateway.selectors import connect_plan
from core.errors import Conflict

TEST_TIMEOUT = 2.0  # seconds: each step (connect, flush, the round trip) gives up after this
TEST_PAYLOAD = b"natsctl connection test"


def user_example_subjects(*, user: NatsUser) -> ExampleSubjects:
    """The example subjects of ``user``: its own permissions, or its scoped signing key's role template."""
    key = user.signing_key
    source: dict[str, Any] = (key.template or {}) if key.scoped else {
        "pub_allow": user.pub_allow, "pub_deny": user.pub_deny, "sub_allow": user.sub_allow,
        "sub_deny": user.sub_deny, "allow_responses": user.allow_responses}
    return example_subjects(
        pub_allow=source.get("pub_allow") or (), pub_deny=source.get("pub_deny") or (),
        sub_allow=source.get("sub_allow") or (), sub_deny=source.get("sub_deny") or (),
        allow_responses=bool(source.get("allow_responses")))


def _server_text(exc: BaseException, errors: list[str]) -> str:
    # nats-py wraps the server's -ERR ('Authorization Violation', ...) in its own exception; error_cb gets it too.
    text = next((e for e in errors if e), "") or str(exc) or type(exc).__name__
    return text.removeprefix("nats: ").strip()


async def _probe(servers: list[str], creds_text: str, subjects: ExampleSubjects, *, timeout: float,
                 regions: dict[str, str]) -> dict[str, Any]:
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc).removeprefix("nats: ").strip())

    result: dict[str, Any] = {"ok": False, "connected": False, "server": None, "server_name": None, "region": None,
                              "rtt_ms": None, "steps": [], "error": None}
    try:
        nc = await nats_client.connect_creds(servers, creds_text, name="natsctl connection test",
                                             connect_timeout=timeout, error_cb=error_cb)
    except Exception as exc:  # refused (auth violation, revoked, expired) or unreachable
        result["error"] = _server_text(exc, errors)
        result["steps"].append({"step": "connect", "ok": False, "detail": result["error"]})
        return result
    try:
        url = nc.connected_url.geturl() if nc.connected_url else None
        info = nc._server_info  # what the server said in its INFO: its name and cluster (= region)
        start = time.monotonic()
        await nc.flush(timeout=timeout)
        result.update(connected=True, server=url, server_name=info.get("server_name"),
                      region=regions.get(url or "") or info.get("cluster"),
                      rtt_ms=round((time.monotonic() - start) * 1000, 2))
        result["steps"].append({"step": "connect", "ok": True,
                                "detail": f"connected to {result['server_name'] or url}"})
        received: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_msg(msg) -> None:
            if not received.done():
                received.set_result(msg.subject)

        async def step(name: str, subject: str, marker: str) -> bool:
            # The server answers a refused SUB or PUB with -ERR 'Permissions Violation ...' before the PONG of
            # the next flush; nats-py hands it to error_cb from its reader task, so give that a turn.
            await nc.flush(timeout=timeout)
            for _ in range(3):
                await asyncio.sleep(0)
            refused = [e for e in errors if marker in e.lower()]
            result["steps"].append({"step": name, "subject": subject, "ok": not refused,
                                    "detail": refused[0] if refused else f"{name} {subject}: accepted"})
            return not refused

        sub_ok = pub_ok = False
        if subjects.sub:
            await nc.subscribe(subjects.sub, cb=on_msg)
            sub_ok = await step("subscribe", subjects.sub, "permissions violation for subscription")
        if subjects.pub:
            await nc.publish(subjects.pub, TEST_PAYLOAD)
            pub_ok = await step("publish", subjects.pub, "permissions violation for publish")
        if subjects.round_trip and sub_ok and pub_ok:
            try:
                got = await asyncio.wait_for(received, timeout)
                result["steps"].append({"step": "round_trip", "subject": got, "ok": True,
                                        "detail": f"received its own message on {got}"})
            except TimeoutError:
                result["steps"].append({"step": "round_trip", "subject": subjects.pub, "ok": False,
                                        "detail": f"no message came back on {subjects.sub} within {timeout:g} s"})
        result["ok"] = all(s["ok"] for s in result["steps"])
        if not result["ok"]:
            result["error"] = next(s["detail"] for s in result["steps"] if not s["ok"])
        return result
    except Exception as exc:
        result["error"] = _server_text(exc, errors)
        result["steps"].append({"step": "connection", "ok": False, "detail": result["error"]})
        return result
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def user_connection_test(*, user: NatsUser, actor: Any, servers: list[str] | None = None,
                         timeout: float = TEST_TIMEOUT) -> dict[str, Any]:
    """Connect as ``user`` (a member of its team asks; audited) to the connect page's servers (closest region
    first) or ``servers``, subscribe and publish the examples' subjects, and report what the servers said. Only for
    users whose seed we hold; a revoked user is tried too, to show the servers refusing it."""
    member_required(team=user.account.team_id, actor=actor)
    user = (NatsUser.objects.select_related("account", "signing_key").get(pk=user.pk))
    if user.seed_id is None:
        raise Conflict("this user was created from your own public key: we never saw its seed, so we cannot connect "
                       "as it; test with your own client and the .creds you built", code="connection_test_seed_unknown")
    regions: dict[str, str] = {}
    if servers is None:
        plan = connect_plan(account=user.account)
        servers = plan["servers"]
        regions = {u: r["name"] for r in plan["regions"] for u in r["servers"]}
    subjects = user_example_subjects(user=user)
    if servers:
        result = asyncio.run(_probe(list(servers), user_creds_get(user=user, revoked_ok=True), subjects,
                                    timeout=timeout, regions=regions))
    else:  # an answer, not an error: the test ran and found nothing to connect to
        result = {"ok": False, "connected": False, "server": None, "server_name": None, "region": None,
                  "rtt_ms": None, "steps": [],
                  "error": "the fleet has no running node to connect to: nothing was tried (staff: see the fleet page)"}
    result["subjects"] = {"pub": subjects.pub, "sub": subjects.sub}
    audit_record(action=AuditEvent.Action.CONNECTION_TEST, actor=actor, team_id=user.account.team_id,
                 target=user.public_key, detail={"account": user.account.public_key, "user": user.name,
                                                 "ok": result["ok"], "server": result["server"],
                                                 "error": result["error"]})
    return result
