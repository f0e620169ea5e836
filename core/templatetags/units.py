"""``{% load units %}``: byte counts as the plans count them (powers of 1024, named so) and exactly."""

from __future__ import annotations

from django import template

register = template.Library()


_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@register.filter
def iec(value) -> str:
    """Bytes in the plans' own units, powers of 1024 named as such: 1572864 -> "1.50 MiB" (whole bytes below 1 KiB).
    Django's filesizeformat divides by 1024 too but says "MB"."""
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return ""
    size, unit = float(abs(amount)), 0
    while size >= 1024 and unit < len(_IEC) - 1:
        size, unit = size / 1024, unit + 1
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,} B" if unit == 0 else f"{sign}{size:.2f} {_IEC[unit]}"


@register.filter
def exact_bytes(value) -> str:
    """The exact count: 1572864 -> "1,572,864 B"."""
    try:
        return f"{int(value):,} B"
    except (TypeError, ValueError):
        return ""
