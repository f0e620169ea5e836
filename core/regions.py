"""What a region's name is (pure, no Django): shared by the fleet, which groups nodes by region, and the tenants'
accounts, which may pick a home region.

A region's name is a DNS label of at most 32 characters (lowercase letters, digits, '-'), so it can also name a
Kubernetes StatefulSet and appear in a URL.
"""

from __future__ import annotations

import re

__all__ = ["REGION_PATTERN", "region_check"]

REGION_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


def region_check(name: object) -> str:
    """``name`` if it is a region name, else ValueError saying what one is."""
    if not isinstance(name, str) or not REGION_PATTERN.fullmatch(name):
        raise ValueError(f"region {name!r} is not a region name: 1-32 lowercase letters, digits or '-', "
                         "starting and ending with a letter or digit (e.g. us-east)")
    return name
