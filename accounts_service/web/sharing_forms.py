"""Forms of the sharing pages. They check shapes; the sharing services check subjects, keys and tokens and
raise ApplicationError on the field they name, which ``views.service_call`` turns into a form error."""

from __future__ import annotations

from django import forms

from accounts_service.models import Export

# A subject has at most 256 tokens; the position must name one of its "*" tokens (the service checks which).
MAX_TOKEN_POSITION = 256


class ExportForm(forms.Form):
    """A stream or a service offered to other accounts: the keyword arguments of ``services.export_create``."""

    name = forms.CharField(max_length=64)
    subject = forms.CharField(max_length=512, help_text="e.g. orders.created or weather.> (wildcards allowed)")
    type = forms.ChoiceField(choices=Export.Type.choices, initial=Export.Type.STREAM)
    private = forms.BooleanField(required=False, label="Private: importers need an activation token from you")
    response_type = forms.ChoiceField(choices=Export.ResponseType.choices, initial=Export.ResponseType.SINGLETON,
                                      required=False, label="Response type",
                                      help_text="services only: how many replies a request gets")
    account_token_position = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_TOKEN_POSITION, initial=0, label="Account token position",
        help_text="0 for none; else the 1-based position of a '*' token that each importer must fill with its "
                  "own account public key (e.g. 3 in ngs.usage.*). The servers then check only that key: they never "
                  "read an activation token, so no expiry or revocation applies. To revoke importers one by one, "
                  "make the export private with no token position.",
    )
    advertise = forms.BooleanField(required=False, label="Advertise in the catalog")
    description = forms.CharField(max_length=200, required=False)

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "subject": data["subject"].strip(),
            "type": data["type"],
            "private": data["private"],
            "response_type": data["response_type"] or Export.ResponseType.SINGLETON,
            "account_token_position": data["account_token_position"] or 0,
            "advertise": data["advertise"],
            "description": data["description"],
        }


class ActivationForm(forms.Form):
    """An activation token of a private export for one importing account."""

    target = forms.CharField(max_length=56, label="Importing account (public key)",
                             widget=forms.TextInput(attrs={"placeholder": "A…", "autocomplete": "off"}),
                             help_text="the account public key (A…) the other team gives you")
    subject = forms.CharField(max_length=512, required=False, label="Subject (optional)",
                              help_text="the export's subject (default) or a narrower one within it")
    expires_at = forms.DateTimeField(required=False, label="Expires (UTC, optional)",
                                     help_text="not with an account token position: the servers would not enforce it",
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {"target_public_key": data["target"].strip(), "subject": data["subject"].strip() or None,
                "expires_at": data["expires_at"]}


class ImportForm(forms.Form):
    """Another account's export brought into this one.

    The exporter's field is named ``from`` (like ``nsc add import --src-account`` / the service's error field and
    the catalog's query parameter), which is not a Python identifier, so it is added in ``__init__``."""

    subject = forms.CharField(max_length=512, help_text="the exporter's subject, or a narrower one within it")
    local_subject = forms.CharField(max_length=512, required=False, label="Local subject (optional)",
                                    help_text="where it appears in this account; default: the same subject")
    token = forms.CharField(required=False, label="Activation token (private exports)", strip=True,
                            widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
                            help_text="the activation JWT the exporter issued for this account")
    name = forms.CharField(max_length=64, required=False, label="Name (optional)")
    share = forms.BooleanField(required=False, label="Share the requester's connection info (services)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = forms.CharField(
            max_length=56, label="Exporting account (public key)",
            widget=forms.TextInput(attrs={"placeholder": "A…", "autocomplete": "off"}),
        )
        self.order_fields(["from", "subject", "local_subject", "token", "name", "share"])

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "exporter_public_key": data["from"].strip(),
            "subject": data["subject"].strip(),
            "local_subject": data["local_subject"].strip() or None,
            "token": data["token"] or None,
            "name": data["name"].strip() or None,
            "share": data["share"],
        }


class CatalogSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name, subject or words"}))
