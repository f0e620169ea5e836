"""Forms of the web UI. They check shapes; the services check meaning and raise ApplicationError, which the
views turn into form errors (see ``views.service_call``)."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation

from accounts_service.models import LIMIT_FIELDS, LIMIT_HELP, TeamMembership

LIMIT_LABELS = {
    "conn": "Connections",
    "subs": "Subscriptions",
    "data": "Data per connection (bytes)",
    "payload": "Max payload (bytes)",
    "imports": "Imports",
    "exports": "Exports",
    "leaf": "Leafnode connections",
    "mem_storage": "JetStream memory (bytes)",
    "disk_storage": "JetStream disk (bytes)",
    "streams": "JetStream streams",
    "consumer": "JetStream consumers",
}
BYTE_LIMITS = frozenset({"data", "payload", "mem_storage", "disk_storage"})


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=150,
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text="At least 8 characters, not a common password, not only digits.")

    def clean(self):
        data = super().clean()
        if data.get("email") and data.get("password"):
            from django.contrib.auth import get_user_model

            probe = get_user_model()(username=data["email"], email=data["email"])
            try:
                password_validation.validate_password(data["password"], user=probe)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class LoginForm(forms.Form):
    email = forms.CharField(max_length=150, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class ResendVerificationForm(forms.Form):
    email = forms.EmailField(max_length=150)


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=150)
    role = forms.ChoiceField(choices=TeamMembership.Role.choices, initial=TeamMembership.Role.MEMBER)


class AccountCreateForm(forms.Form):
    name = forms.CharField(max_length=64)
    description = forms.CharField(max_length=200, required=False)
    team = forms.ChoiceField(choices=())

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(str(t.pk), t.name) for t in teams]


class AccountEditForm(forms.Form):
    """Name, description and every limit; a limit's help text shows the plan's ceiling."""

    name = forms.CharField(max_length=64)
    description = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, ceilings: dict[str, int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        for field in LIMIT_FIELDS:
            ceiling = (ceilings or {}).get(field)
            plan = ("" if ceiling is None
                    else "; plan: unlimited" if ceiling == -1 else f"; plan allows up to {ceiling}")
            help_text = LIMIT_HELP[field] + plan
            self.fields[field] = forms.IntegerField(label=LIMIT_LABELS[field], min_value=-1, help_text=help_text,
                                                    max_value=2**62)

    def limits(self) -> dict[str, int]:
        return {field: self.cleaned_data[field] for field in LIMIT_FIELDS}


class NatsUserForm(forms.Form):
    """A NATS user: subjects one per line (or comma separated); an optional public key keeps the seed with you."""

    name = forms.CharField(max_length=64)
    pub_allow = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Publish allow",
                                help_text="subjects, one per line; empty allows everything the account allows")
    pub_deny = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Publish deny")
    sub_allow = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Subscribe allow")
    sub_deny = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Subscribe deny")
    allow_responses = forms.BooleanField(required=False, label="May reply to requests it receives")
    expires_at = forms.DateTimeField(required=False, label="Expires (UTC)",
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    tags = forms.CharField(required=False, label="Tags", widget=forms.Textarea(attrs={"rows": 1}),
                           help_text="name:value, one per line: in the user JWT, where a scoped signing key's "
                                     "{{tag(name)}} reads them")
    public_key = forms.CharField(required=False, max_length=56, label="Public key (optional)",
                                 help_text="a user nkey (U…) you made yourself: we never see its seed, and the "
                                           ".creds download is not offered")

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        kwargs = {
            "name": data["name"],
            "pub_allow": _lines(data["pub_allow"]),
            "pub_deny": _lines(data["pub_deny"]),
            "sub_allow": _lines(data["sub_allow"]),
            "sub_deny": _lines(data["sub_deny"]),
            "allow_responses": data["allow_responses"],
            "expires_at": data["expires_at"],
            "tags": _lines(data["tags"]),
        }
        if data["public_key"].strip():
            kwargs["public_key"] = data["public_key"].strip()
        return kwargs


class TokenForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="what the token is for, e.g. “CI deploy”")
    scope = forms.ChoiceField(choices=[("write", "read and write"), ("read", "read only (GET and HEAD)")],
                              initial="write", required=False)  # (empty: write, as before scopes existed)
    team = forms.TypedChoiceField(coerce=int, required=False, empty_value=None,
                                  help_text="only this team's objects (other teams are unknown to the token)")
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Expires in (days)",
                                         help_text="empty: never")

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "every team of mine"), *((t.pk, t.name) for t in teams)]


class ConfirmNameForm(forms.Form):
    """Type the name to confirm a destructive action."""

    confirm = forms.CharField(max_length=64)

    def __init__(self, *args, expected: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected

    def clean_confirm(self):
        if self.cleaned_data["confirm"] != self.expected:
            raise forms.ValidationError(f"type {self.expected} to confirm")
        return self.cleaned_data["confirm"]
