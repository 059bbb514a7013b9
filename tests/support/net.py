"""Free-port allocation and port readiness polling for end-to-end tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago.

    The socket is closed before returning, so another process may grab the
    port in between; callers that bind it themselves (nginx) should retry on
    "address already in use" rather than rely on this being race-free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if a TCP connect to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 10.0,
    *,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Block until host:port accepts TCP connections.

    `alive` lets the caller abort early when the server process has already
    died (e.g. nginx failed to bind), instead of waiting out the timeout.
    Raises TimeoutError, or RuntimeError if `alive()` turns False.
    """
    deadline = time.monotonic() + timeout
    while True:
        if port_is_open(host, port):
            return
        if alive is not None and not alive():
            raise RuntimeError(f"server for {host}:{port} exited before listening")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} not accepting connections after {timeout}s")
        time.sleep(0.05)
