"""The console's Content-Security-Policy: the exact header on its pages, the Swagger UI under the same policy, and
no template that would need a weaker one (inline handlers, inline scripts, ``javascript:`` URLs, style attributes)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.conf import settings

from accounts_service import services
from accounts_service.models import Account
from tests.fleet import ROOT

pytestmark = pytest.mark.django_db

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
TEMPLATES = ROOT / "templates"
HTML_TEMPLATES = sorted(p for p in TEMPLATES.rglob("*.html"))


def test_the_default_policy_is_the_strict_one():
    assert settings.CSP_POLICY == POLICY


@pytest.mark.parametrize("path", ["/", "/login/", "/signup/", "/password-reset/"])
def test_anonymous_pages_send_the_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert response["Content-Security-Policy"] == POLICY


def test_logged_in_pages_send_the_policy(owner_client, shared):
    account = Account.objects.get(team=shared)
    for path in ("/dashboard/", f"/accounts/{account.public_key}/", f"/accounts/{account.public_key}/usage/",
                 f"/teams/{shared.slug}/", "/tokens/", "/connect/"):
        response = owner_client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == POLICY, path


def test_error_pages_send_the_policy(owner_client):
    assert owner_client.get("/accounts/ANOTHERONE/")["Content-Security-Policy"] == POLICY  # the 404 page


def test_the_server_error_page_renders_without_a_request_and_takes_its_style_from_a_file():
    from django.template.loader import get_template

    html = get_template("500.html").render()  # as django.views.defaults.server_error renders it: no context
    assert '<link rel="stylesheet" href="/static/css/app.css">' in html and "Something went wrong" in html


def test_an_operator_can_change_or_drop_the_policy(client, settings):
    settings.CSP_POLICY = "default-src 'self'; report-to csp"
    assert client.get("/login/")["Content-Security-Policy"] == "default-src 'self'; report-to csp"
    settings.CSP_POLICY = ""
    assert "Content-Security-Policy" not in client.get("/login/")


# ------------------------------------------------------------------------------------------------
# The Swagger UI: its init script is a file of this origin, so the console's policy is enough
# ------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """The scripts, styles and attributes of one HTML document that a CSP without 'unsafe-inline' refuses."""

    def __init__(self):
        super().__init__()
        self.script_srcs: list[str] = []
        self.refused: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.script_srcs.append(values["src"])
        elif tag in ("script", "style"):
            self._in = tag
            self.refused.append(f"inline <{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style" or (value or "").strip().lower().startswith("javascript:"):
                self.refused.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag):
        self._in = None


def test_api_docs_load_every_script_from_this_origin(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == POLICY  # script-src 'self', style-src 'self': no exception
    page = _Page()
    page.feed(response.content.decode())
    assert page.refused == []
    assert len(page.script_srcs) == 3 and all(src.startswith("/") and not src.startswith("//")
                                              for src in page.script_srcs), page.script_srcs
    init = client.get(page.script_srcs[-1])  # /api/docs/?script=: the init script, served as a file
    assert init.status_code == 200 and init["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in init.content.decode()
    for src in page.script_srcs[:2]:
        assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in src


# ------------------------------------------------------------------------------------------------
# The templates: nothing in them needs 'unsafe-inline'
# ------------------------------------------------------------------------------------------------

# An attribute named on...= anywhere in a tag (a Django tag may open a tag's attributes, so no HTML parser here).
INLINE_HANDLER = re.compile(r"<[a-zA-Z][^<]*?\son[a-z]+\s*=", re.S)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\ssrc=)[^>]*>", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[a-zA-Z][^<]*?\sstyle\s*=", re.S)


def test_the_scan_covers_every_page():
    assert len(HTML_TEMPLATES) > 40 and TEMPLATES / "base.html" in HTML_TEMPLATES


@pytest.mark.parametrize("path", HTML_TEMPLATES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_needs_unsafe_inline(path):
    text = path.read_text()
    assert not INLINE_HANDLER.search(text), "inline event handler: use a data- attribute handled by static/js/app.js"
    assert not INLINE_SCRIPT.search(text), "inline <script>: move it to a file under static/"
    assert "javascript:" not in text.lower(), "javascript: URL: use a data- attribute handled by static/js/app.js"
    assert "<style" not in text, "inline <style>: move it to static/css/"
    assert not STYLE_ATTRIBUTE.search(text), "style attribute: use a class in static/css/app.css"


@pytest.mark.parametrize("bad", [
    '<form method="post" onsubmit="return confirm(\'x\')">',
    '<select name="a" aria-label="A"\n  onchange="this.form.submit()">',
    '<option value="{{ a }}"{% if a %} selected{% endif %} onclick="x()">',
])
def test_the_handler_scan_finds_handlers(bad):
    assert INLINE_HANDLER.search(bad)


def test_the_handler_scan_ignores_text_and_code():
    assert not INLINE_HANDLER.search('<meta name="viewport" content="width=device-width">')
    assert not INLINE_HANDLER.search("<pre>await nc.subscribe('greet', cb=on_message)</pre>")
    assert not INLINE_SCRIPT.search('<script src="/static/js/app.js" defer></script>')


# ------------------------------------------------------------------------------------------------
# The confirm questions: names go through the HTML attribute's autoescaping
# ------------------------------------------------------------------------------------------------


def test_confirm_questions_escape_the_names_they_carry(owner_client, owner):
    team = services.team_create(name='O\'Hara "&" <Co>', actor=owner)
    html = owner_client.get(f"/teams/{team.slug}/").content.decode()
    assert 'data-confirm="Leave O&#x27;Hara &quot;&amp;&quot; &lt;Co&gt;?"' in html
    assert "\\u0027" not in html  # no escapejs left: in an attribute it would show up verbatim in the dialog


def test_the_connect_page_account_picker_submits_through_app_js(owner_client, shared):
    html = owner_client.get("/connect/").content.decode()
    assert re.search(r'<select name="account"[^>]*\sdata-autosubmit', html)
    assert "<noscript><button" in html  # and without JS, a button
