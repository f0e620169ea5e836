"""Payment providers sit behind one small interface; nothing here calls the internet.

The default provider is manual: the invoice is open until staff record the payment (a bank transfer quoting
the invoice number). A card or direct-debit provider is a class with the same method, named by the
BILLING_PAYMENT_PROVIDER setting (a dotted path); it is asked once per issued invoice with something to pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from billing.models import Invoice


@dataclass(frozen=True)
class PaymentOutcome:
    """What the provider did with an invoice: still ``open`` (awaiting payment) or ``paid`` at once."""

    status: Literal["open", "paid"]
    reference: str = ""


class PaymentProvider(Protocol):
    name: str

    def payment_request(self, invoice: Invoice) -> PaymentOutcome:
        """Ask for the invoice's total (charge a card on file, send a debit instruction, ...). Raising leaves the
        invoice open without a provider, and the next generation run asks again."""


class ManualProvider:
    """Bank transfer quoting the invoice number; staff mark the invoice paid when the money arrives."""

    name = "manual"

    def payment_request(self, invoice: Invoice) -> PaymentOutcome:
        return PaymentOutcome(status="open", reference=f"bank transfer quoting {invoice.number}")


def provider_get() -> PaymentProvider:
    return import_string(settings.BILLING_PAYMENT_PROVIDER)()
