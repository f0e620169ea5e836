"""Loopback/host TCP ports: is one free, and a free one (pure, no Django)."""

from __future__ import annotations

import socket


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` on ``host`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def preferred_port(host: str, port: int) -> int:
    """``port`` if it is free on ``host``, else a free one."""
    return port if port_free(host, port) else free_port(host)
