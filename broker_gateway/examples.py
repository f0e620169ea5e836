"""Connect examples built from one user's own permissions (pure, no Django): which subjects it may publish and
subscribe, and the client snippets (nats CLI, Go, JavaScript, Python, Java, Rust) that use only those.

nats-server's rules (server/client.go ``pubAllowed`` / ``canSubscribe``): with an allow list a subject must match
one of it, without one everything is allowed; a deny entry always wins. A subscription to a wildcard is refused
only when it is not within an allow entry; denied subjects under it are then filtered at delivery, so an example
subscribes to a wildcard only when no deny entry overlaps it. A requester subscribes to ``_INBOX.<id>.*`` (nats.go,
nats.js, nats-py, jnats and async-nats all use the ``_INBOX.`` prefix by default); a responder publishes to the
requester's inbox, which ``allow_responses`` permits even without ``_INBOX.>`` in its publish list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from operators.subjects import has_wildcards, is_subset, overlaps

__all__ = ["ExampleSubjects", "example_snippets", "example_subjects"]

INBOX_WILDCARD = "_INBOX.>"
_INBOX_SAMPLE = "_INBOX.example.1"  # a literal a responder would publish its reply to
_FILLERS = ("demo", "example", "test", "hello", "x1")  # what a wildcard token becomes in a concrete subject
_DEFAULT_SUBJECT = "demo.hello"  # the subject of a user that may publish anything


@dataclass(frozen=True)
class ExampleSubjects:
    """What the examples may use: ``pub`` a literal subject the user may publish, ``sub`` one it may subscribe
    (a wildcard only when nothing under it is denied), ``request`` the subject of the request/reply example with
    which of its sides work, and ``notes`` saying what is left out and why."""

    pub: str | None
    sub: str | None
    request: str | None = None
    requester: bool = False
    responder: bool = False
    round_trip: bool = False  # a message published on ``pub`` comes back on ``sub``
    notes: tuple[str, ...] = field(default=())


def _concretes(pattern: str) -> list[str]:
    """Literal subjects within ``pattern``: each ``*`` and the final ``>`` become one filler word."""
    if pattern == ">":
        return [_DEFAULT_SUBJECT, *(f"{f}.hello" for f in _FILLERS[1:])]
    return [".".join(f if t in ("*", ">") else t for t in pattern.split(".")) for f in _FILLERS]


def _allowed(subject: str, allow: Sequence[str], deny: Sequence[str]) -> bool:
    """May ``subject`` (literal, or a wildcard whose every subject must be allowed) be used?"""
    if allow and not any(is_subset(subject, a) for a in allow):
        return False
    return not any(overlaps(subject, d) for d in deny)


def _candidates(allow: Sequence[str]) -> list[str]:
    out: list[str] = []
    for pattern in (list(allow) or [">"]):
        if "{{" in pattern:  # a scoped key's template: its value is known only when the user connects
            continue
        out.extend(_concretes(pattern) if has_wildcards(pattern) else [pattern])
    # Prefer ordinary subjects to inboxes and system subjects.
    return sorted(dict.fromkeys(out), key=lambda s: s.startswith(("_INBOX.", "$")))


def _pick_pub(allow: Sequence[str], deny: Sequence[str]) -> str | None:
    return next((s for s in _candidates(allow) if _allowed(s, allow, deny)), None)


def _pick_sub(allow: Sequence[str], deny: Sequence[str], *, near: str | None) -> str | None:
    """A subject to subscribe: the widest allowed pattern holding ``near`` (the publish example), else ``near``
    itself, else any allowed one."""
    if near is not None:
        for pattern in (list(allow) or [">"]):
            if pattern != ">" and is_subset(near, pattern) and _allowed(pattern, allow, deny):
                return pattern
        parent = ".".join([*near.split(".")[:-1], ">"]) if "." in near else None
        if parent and _allowed(parent, allow, deny):
            return parent
        if _allowed(near, allow, deny):
            return near
    for pattern in allow:
        if "{{" not in pattern and has_wildcards(pattern) and _allowed(pattern, allow, deny):
            return pattern
    return next((s for s in _candidates(allow) if _allowed(s, allow, deny)), None)


def example_subjects(*, pub_allow: Sequence[str] = (), pub_deny: Sequence[str] = (), sub_allow: Sequence[str] = (),
                     sub_deny: Sequence[str] = (), allow_responses: bool = False) -> ExampleSubjects:
    """The subjects the connect examples use for a user with these permissions (empty allow list: everything)."""
    pub = _pick_pub(pub_allow, pub_deny)
    sub = _pick_sub(sub_allow, sub_deny, near=pub)
    notes: list[str] = []
    if pub is None:
        notes.append("This user may not publish anything, so the examples only subscribe.")
    if sub is None:
        notes.append("This user may not subscribe to anything, so the examples only publish.")
    requester = pub is not None and _allowed(INBOX_WILDCARD, sub_allow, sub_deny)
    # The responder subscribes to the request subject and publishes to the requester's inbox.
    responder = pub is not None and _allowed(pub, sub_allow, sub_deny) and (
        allow_responses or _allowed(_INBOX_SAMPLE, pub_allow, pub_deny))
    if pub is not None and not requester:
        notes.append(f"No request example: a requester must subscribe to {INBOX_WILDCARD} for its replies, which "
                     "this user may not.")
    if pub is not None and requester and not responder:
        notes.append(f"This user can send requests on {pub} but not answer them (it would need to subscribe to "
                     f"{pub} and to publish replies: allow responses, or publish {INBOX_WILDCARD}).")
    round_trip = pub is not None and sub is not None and is_subset(pub, sub)
    return ExampleSubjects(pub=pub, sub=sub, request=pub if (requester or responder) else None, requester=requester,
                           responder=responder, round_trip=round_trip, notes=tuple(notes))


# ------------------------------------------------------------------------------------------------
# Snippets
# ------------------------------------------------------------------------------------------------


def _q(value: str) -> str:
    """A double-quoted string literal (JSON's escaping is valid in Go, JavaScript, Python, Java and Rust)."""
    return json.dumps(value)


def _sh(value: str) -> str:
    """A shell word: as it is when plain, else single-quoted (``>`` and ``*`` are special to the shell)."""
    if re.fullmatch(r"[\w.\-:/,=]+", value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def _cli(servers: str, creds: str, context: str, s: ExampleSubjects) -> str:
    lines = [f"nats context add {context} --server {servers} --creds ./{creds} --select"]
    if s.sub:
        lines.append(f"nats sub {_sh(s.sub)}" + ("             # in one terminal" if s.pub else ""))
    if s.pub:
        lines.append(f"nats pub {_sh(s.pub)} 'hello'" + ("     # in another" if s.sub else ""))
    if s.request and s.responder:
        lines.append(f"nats reply {_sh(s.request)} 'hi'     # answer requests…")
    if s.request and s.requester:
        lines.append(f"nats req {_sh(s.request)} ''          # …and ask")
    lines += ["", "# or without a context, the servers and credentials each time:"]
    each = f"nats --creds ./{creds} --server {servers}"
    if s.sub:
        lines.append(f"{each} sub {_sh(s.sub)}")
    if s.pub:
        lines.append(f"{each} pub {_sh(s.pub)} 'hello'")
    return "\n".join(lines)


def _go(servers: list[str], creds: str, s: ExampleSubjects) -> str:
    body = []
    if s.sub:
        body.append(f"\tsub, err := nc.Subscribe({_q(s.sub)}, func(m *nats.Msg) {{\n"
                    "\t\tfmt.Printf(\"%s: %s\\n\", m.Subject, string(m.Data))\n\t})\n"
                    "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tdefer sub.Unsubscribe()")
    if s.pub:
        body.append(f"\tif err := nc.Publish({_q(s.pub)}, []byte(\"hello\")); err != nil {{\n\t\tlog.Fatal(err)\n\t}}")
    if s.request and s.responder:
        body.append(f"\tnc.Subscribe({_q(s.request)}, func(m *nats.Msg) {{ m.Respond([]byte(\"hi\")) }})")
    if s.request and s.requester:
        body.append(f"\treply, err := nc.Request({_q(s.request)}, nil, 2*time.Second)\n"
                    "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tfmt.Println(string(reply.Data))")
    imports = ['"fmt"', '"log"', *(['"time"'] if s.request and s.requester else []), "",
               '"github.com/nats-io/nats.go"']
    return ("package main\n\nimport (\n" + "\n".join(f"\t{i}" if i else "" for i in imports) + "\n)\n\n"
            "func main() {\n"
            f"\tnc, err := nats.Connect({_q(','.join(servers))}, nats.UserCredentials({_q(creds)}))\n"
            "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tdefer nc.Drain()\n\n"
            + "\n\n".join(body) + "\n\tnc.Flush()\n}")


def _js(servers: list[str], creds: str, s: ExampleSubjects) -> str:
    body = []
    if s.sub:
        body.append(f"const sub = nc.subscribe({_q(s.sub)});\n(async () => {{\n"
                    "  for await (const m of sub) console.log(`${m.subject}: ${sc.decode(m.data)}`);\n})();")
    if s.pub:
        body.append(f"nc.publish({_q(s.pub)}, sc.encode(\"hello\"));")
    if s.request and s.responder:
        body.append(f"const service = nc.subscribe({_q(s.request)});\n(async () => {{\n"
                    "  for await (const m of service) m.respond(sc.encode(\"hi\"));\n})();")
    if s.request and s.requester:
        body.append(f"const reply = await nc.request({_q(s.request)}, sc.encode(\"\"), {{ timeout: 2000 }});\n"
                    "console.log(sc.decode(reply.data));")
    return ("// example.mjs (an ES module: top-level await)\n"
            'import { readFileSync } from "node:fs";\n'
            'import { connect, credsAuthenticator, StringCodec } from "nats";\n\n'
            "const nc = await connect({\n"
            f"  servers: [{', '.join(_q(u) for u in servers)}],\n"
            f"  authenticator: credsAuthenticator(readFileSync({_q(creds)})),\n"
            "});\nconst sc = StringCodec();\n\n" + "\n\n".join(body) + "\n\nawait nc.flush();\nawait nc.drain();")


def _python(servers: list[str], creds: str, s: ExampleSubjects) -> str:
    body = []
    if s.sub:
        body.append("    async def on_message(msg):\n        print(f\"{msg.subject}: {msg.data.decode()}\")\n\n"
                    f"    await nc.subscribe({_q(s.sub)}, cb=on_message)")
    if s.pub:
        body.append(f"    await nc.publish({_q(s.pub)}, b\"hello\")")
    if s.request and s.responder:
        body.append("    async def on_request(msg):\n        await msg.respond(b\"hi\")\n\n"
                    f"    await nc.subscribe({_q(s.request)}, cb=on_request)")
    if s.request and s.requester:
        body.append(f"    reply = await nc.request({_q(s.request)}, b\"\", timeout=2)\n    print(reply.data.decode())")
    return ("import asyncio\n\nimport nats\n\n\nasync def main():\n"
            f"    nc = await nats.connect(servers=[{', '.join(_q(u) for u in servers)}],\n"
            f"                            user_credentials={_q(creds)})\n\n"
            + "\n\n".join(body) + "\n\n    await nc.flush()\n    await nc.drain()\n\n\nasyncio.run(main())")


def _java(servers: list[str], creds: str, s: ExampleSubjects) -> str:
    body = []
    if s.sub:
        body.append("        Dispatcher d = nc.createDispatcher(msg ->\n"
                    "            System.out.println(msg.getSubject() + \": \" + new String(msg.getData(), UTF_8)));\n"
                    f"        d.subscribe({_q(s.sub)});")
    if s.pub:
        body.append(f"        nc.publish({_q(s.pub)}, \"hello\".getBytes(UTF_8));")
    if s.request and s.responder:
        body.append("        Dispatcher service = nc.createDispatcher(msg ->\n"
                    "            nc.publish(msg.getReplyTo(), \"hi\".getBytes(UTF_8)));\n"
                    f"        service.subscribe({_q(s.request)});")
    if s.request and s.requester:
        body.append(f"        Message reply = nc.request({_q(s.request)}, new byte[0], Duration.ofSeconds(2));\n"
                    "        System.out.println(new String(reply.getData(), UTF_8));")
    return ("import static java.nio.charset.StandardCharsets.UTF_8;\n\nimport io.nats.client.*;\n"
            "import java.time.Duration;\n\npublic class Example {\n"
            "    public static void main(String[] args) throws Exception {\n"
            "        Options options = new Options.Builder()\n"
            f"            .servers(new String[] {{{', '.join(_q(u) for u in servers)}}})\n"
            f"            .authHandler(Nats.credentials({_q(creds)}))\n            .build();\n"
            "        Connection nc = Nats.connect(options);\n\n" + "\n\n".join(body)
            + "\n\n        nc.flush(Duration.ofSeconds(2));\n        nc.drain(Duration.ofSeconds(2));\n    }\n}")


def _rust(servers: list[str], creds: str, s: ExampleSubjects) -> str:
    body = []
    if s.sub:
        body.append(f"    let mut sub = client.subscribe({_q(s.sub)}).await?;")
    if s.request and s.responder:
        body.append(f"    let mut service = client.subscribe({_q(s.request)}).await?;\n"
                    "    let responder = client.clone();\n    tokio::spawn(async move {\n"
                    "        while let Some(msg) = service.next().await {\n"
                    "            if let Some(reply) = msg.reply {\n"
                    "                let _ = responder.publish(reply, \"hi\".into()).await;\n"
                    "            }\n        }\n    });")
    if s.pub:
        body.append(f"    client.publish({_q(s.pub)}, \"hello\".into()).await?;\n    client.flush().await?;")
    if s.request and s.requester:
        body.append(f"    let reply = client.request({_q(s.request)}, \"\".into()).await?;\n"
                    "    println!(\"{}\", String::from_utf8_lossy(&reply.payload));")
    if s.sub:
        body.append("    if let Some(msg) = sub.next().await {\n"
                    "        println!(\"{}: {}\", msg.subject, String::from_utf8_lossy(&msg.payload));\n    }")
    addrs = ", ".join(f"{_q(u)}.parse::<async_nats::ServerAddr>()?" for u in servers)
    return ("// Cargo.toml: async-nats, tokio (features = [\"full\"]), futures\nuse futures::StreamExt;\n\n"
            "#[tokio::main]\nasync fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {\n"
            f"    let client = async_nats::ConnectOptions::with_credentials_file({_q(creds)})\n        .await?\n"
            f"        .connect(vec![{addrs}])\n        .await?;\n\n" + "\n\n".join(body) + "\n    Ok(())\n}")


def example_snippets(*, servers: Sequence[str], creds_file: str, context: str, subjects: ExampleSubjects) -> list[dict]:
    """Each client's example as ``{"id", "title", "install", "code", "docs"}``, using only ``subjects`` and every
    URL of ``servers`` (closest first; a placeholder when the fleet has none)."""
    urls = list(servers) or ["nats://HOST:4222"]
    return [
        {"id": "cli", "title": "The nats CLI", "install": "github.com/nats-io/natscli",
         "docs": "https://github.com/nats-io/natscli#installation",
         "code": _cli(",".join(urls), creds_file, context, subjects)},
        {"id": "go", "title": "Go (nats.go)", "install": "go get github.com/nats-io/nats.go",
         "docs": "https://pkg.go.dev/github.com/nats-io/nats.go", "code": _go(urls, creds_file, subjects)},
        {"id": "js", "title": "JavaScript (nats.js, Node.js)", "install": "npm install nats",
         "docs": "https://github.com/nats-io/nats.js", "code": _js(urls, creds_file, subjects)},
        {"id": "python", "title": "Python (nats-py)", "install": "pip install nats-py nkeys",
         "docs": "https://nats-io.github.io/nats.py/", "code": _python(urls, creds_file, subjects)},
        {"id": "java", "title": "Java (jnats)", "install": "io.nats:jnats",
         "docs": "https://github.com/nats-io/nats.java", "code": _java(urls, creds_file, subjects)},
        {"id": "rust", "title": "Rust (async-nats)", "install": "cargo add async-nats tokio futures",
         "docs": "https://docs.rs/async-nats", "code": _rust(urls, creds_file, subjects)},
    ]
