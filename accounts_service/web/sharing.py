"""Web views of sharing: an account's exports and their activation tokens, its imports, and the catalog of
advertised exports across the platform.

Thin like ``accounts``: a form checks shapes, a sharing service does the work inside its own transaction (so bad
input creates nothing) and its ApplicationError becomes a form error. Every account comes from ``request_account``
(scoped to the person's teams), so another team's account, export, activation or import is the same 404 as an
unknown one.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts_service import services
from accounts_service.models import Account, Activation, Export
from accounts_service.selectors import export_catalog, export_get, export_list, import_get, import_list
from accounts_service.web import sharing_forms as forms
from accounts_service.web.helpers import attempt, one, request_account, service_call
from core.errors import NotFound

CATALOG_PAGE_SIZE = 25

# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _exports_with_activations(account: Account) -> QuerySet[Export]:
    # Two queries in all: the exports with their importer counts, and every activation of them.
    activations = Activation.objects.order_by("revoked_at", "-created_at")
    return (export_list(account=account).annotate(importers=Count("imports", distinct=True))
            .prefetch_related(Prefetch("activations", queryset=activations)))


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------------------------------------
# Exports and activations
# ------------------------------------------------------------------------------------------------


@login_required
def exports(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    form = forms.ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, export = service_call(form, services.export_create, account=account, actor=request.user,
                                  **form.service_kwargs())
        if ok:
            visibility = "private" if export.token_req else "public"
            messages.success(request, f"{visibility.capitalize()} {export.type} {export.name} ({export.subject}) "
                                      "exported; the account is re-signed and pushed to the fleet.")
            return redirect(reverse("web:exports", kwargs={"pk": account.public_key}) + f"#export-{export.pk}")
    return render(request, "web/sharing/exports.html", {
        "account": account, "tab": "exports", "form": form, "exports": _exports_with_activations(account),
        "now": timezone.now(),
    })


@login_required
@require_POST
def export_delete(request: HttpRequest, pk: str, export_id: int) -> HttpResponse:
    account = request_account(request, pk)
    export = export_get(account=account, export_id=export_id)
    if attempt(request, services.export_delete, export=export, actor=request.user):
        messages.success(request, f"Export {export.name} ({export.subject}) withdrawn; its importers lost it.")
    return redirect("web:exports", pk=account.public_key)


@login_required
def activation_create(request: HttpRequest, pk: str, export_id: int) -> HttpResponse:
    """GET: the form; POST: issue the token and show it in this response only (it is a bearer credential)."""
    account = request_account(request, pk)
    export = export_get(account=account, export_id=export_id)
    form = forms.ActivationForm(request.POST or None, initial={"target": request.GET.get("target", "")})
    if request.method == "POST" and form.is_valid():
        ok, activation = service_call(form, services.activation_create, export=export, actor=request.user,
                                      **form.service_kwargs())
        if ok:
            return _no_store(render(request, "web/sharing/activation_created.html", {
                "account": account, "tab": "exports", "export": export, "activation": activation,
            }))
    return render(request, "web/sharing/activation_create.html", {
        "account": account, "tab": "exports", "export": export, "form": form,
    })


@login_required
@require_POST
def activation_revoke(request: HttpRequest, pk: str, export_id: int, activation_id: int) -> HttpResponse:
    account = request_account(request, pk)
    export = export_get(account=account, export_id=export_id)
    activation = one(Activation.objects.filter(export=export), activation_id, "activation")
    if attempt(request, services.activation_revoke, activation=activation, actor=request.user):
        messages.success(request, f"Activation of {activation.subject} for {activation.target_public_key} revoked; "
                                  "the importer loses access once the fleet holds the new account JWT.")
    return redirect(reverse("web:exports", kwargs={"pk": account.public_key}) + f"#export-{export.pk}")


# ------------------------------------------------------------------------------------------------
# Imports
# ------------------------------------------------------------------------------------------------


@login_required
def imports(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    # The catalog's "Import into…" lands here with ?from=&subject=&name= to pre-fill the form.
    prefill = {k: request.GET.get(k, "") for k in ("from", "subject", "local_subject", "name")}
    form = forms.ImportForm(request.POST or None, initial=prefill)
    if request.method == "POST" and form.is_valid():
        ok, imp = service_call(form, services.import_create, account=account, actor=request.user,
                               **form.service_kwargs())
        if ok:
            messages.success(request, f"Imported {imp.subject} from {imp.export.account.name} as {imp.local_subject}; "
                                      "the account is re-signed and pushed to the fleet.")
            return redirect(reverse("web:imports", kwargs={"pk": account.public_key}) + f"#import-{imp.pk}")
    imports = list(import_list(account=account))
    for imp in imports:
        imp.builtin = services.import_is_builtin(imp)  # shown as built in, with no Delete button
    return render(request, "web/sharing/imports.html", {
        "account": account, "tab": "imports", "form": form, "imports": imports,
        "prefilled": bool(prefill["from"]) and request.method != "POST",
    })


@login_required
@require_POST
def import_delete(request: HttpRequest, pk: str, import_id: int) -> HttpResponse:
    account = request_account(request, pk)
    imp = import_get(account=account, import_id=import_id)
    if attempt(request, services.import_delete, imp=imp, actor=request.user):
        messages.success(request, f"Import {imp.name} ({imp.local_subject}) removed.")
    return redirect("web:imports", pk=account.public_key)


# ------------------------------------------------------------------------------------------------
# Catalog
# ------------------------------------------------------------------------------------------------


@login_required
@require_GET
def catalog(request: HttpRequest) -> HttpResponse:
    search = forms.CatalogSearchForm(request.GET or None)
    q = search.cleaned_data["q"].strip() if search.is_valid() else ""
    page = Paginator(export_catalog(q=q), CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    mine = list(Account.objects.for_user(request.user).filter(is_system=False).select_related("team")
                .order_by("team__name", "name"))
    return render(request, "web/sharing/catalog.html", {
        "page": page, "q": q, "search": search, "my_accounts": mine,
        "my_keys": {a.public_key for a in mine},
        "query_suffix": urlencode({"q": q}) if q else "",
    })


@login_required
@require_GET
def catalog_import(request: HttpRequest) -> HttpResponse:
    """"Import into…": from a catalog entry to the chosen account's import form, pre-filled. An export with an
    account token position gets the importer's own key in that position, as NATS requires of such imports."""
    account = request_account(request, request.GET.get("account", ""))
    try:
        export = export_catalog().get(pk=int(request.GET.get("export", "")))
    except (Export.DoesNotExist, ValueError):
        raise NotFound("no such export in the catalog") from None
    tokens = export.subject.split(".")
    position = export.account_token_position
    if position and 0 < position <= len(tokens) and tokens[position - 1] == "*":
        tokens[position - 1] = account.public_key
    query = urlencode({"from": export.account.public_key, "subject": ".".join(tokens), "name": export.name})
    return redirect(reverse("web:imports", kwargs={"pk": account.public_key}) + "?" + query)
