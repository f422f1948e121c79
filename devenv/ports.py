"""Binding a service's port up front, so a taken port is one clear line, not uvicorn's exit 3."""

from __future__ import annotations

import errno
import socket

from .errors import ConfigError

__all__ = ["PortUnavailable", "bind_port"]


class PortUnavailable(ConfigError):
    """The port cannot be listened on; the message names it and the option that chooses another."""


def bind_port(host: str, port: int, option: str = "--port") -> socket.socket:
    """A listening TCP socket on ``host:port`` (SO_REUSEADDR, as uvicorn binds), inheritable by workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise PortUnavailable(
            f"port {port} on {host} {why}; choose another with {option} N "
            f"(see what listens: ss -ltnp 'sport = :{port}')"
        ) from None
    except (OverflowError, socket.gaierror) as exc:
        sock.close()
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc}; check --host and {option}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
