"""Regions and the fleet's topology as text (pure, no Django): ``us-east=3,eu-west=2``.

A region is a NATS cluster named after it; every region is joined to every other by gateways. What a region's
name may be is ``core.regions``.
"""

from __future__ import annotations

from core.regions import REGION_PATTERN, region_check

__all__ = ["MAX_NODES", "REGION_PATTERN", "region_check", "topology_parse"]

MAX_NODES = 64  # in the whole fleet


def topology_parse(text: str) -> list[tuple[str, int]]:
    """``"us-east=3,eu-west=2"`` as ``[("us-east", 3), ("eu-west", 2)]``, in the order given (the first region is
    the one a node added without a region joins). A region may have 0 nodes; the whole fleet at most MAX_NODES."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("topology is empty: give REGION=NODES[,REGION=NODES...], e.g. us-east=3,eu-west=2")
    out: list[tuple[str, int]] = []
    for part in text.split(","):
        name, sep, count = part.strip().partition("=")
        if not sep:
            raise ValueError(f"topology part {part.strip()!r} is not REGION=NODES (e.g. us-east=3)")
        region_check(name.strip())
        if not count.strip().isdigit():
            raise ValueError(f"region {name.strip()}: {count.strip()!r} is not a number of nodes")
        if any(r == name.strip() for r, _ in out):
            raise ValueError(f"region {name.strip()} is given twice")
        out.append((name.strip(), int(count)))
    total = sum(n for _, n in out)
    if total > MAX_NODES:
        raise ValueError(f"topology has {total} nodes; the fleet takes at most {MAX_NODES}")
    return out
