"""Waiting until a just-started server accepts connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse


async def wait_until_answering(
    url, poll: Callable[[], Awaitable], timeout: float, interval: float
) -> None:
    """Wait until the new server accepts connections, so the hub's check passes at once.

    JupyterHub checks a new server with exponential backoff (0.2 s, 0.4 s,
    0.8 s, ... between tries), which adds up to seconds to every spawn.
    A server listens only once it is ready to serve, so a TCP connect is
    the signal; it costs the hub no HTTP client slot (the hub's shared
    client queues requests beyond ten at a time). Gives up quietly (the
    hub then checks as usual) after ``timeout`` or once ``poll()`` says the
    process ended. ``url`` is a URL or a ``(host, port)`` pair.
    """
    if isinstance(url, str):
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    else:
        host, port = url
    deadline = time.monotonic() + timeout
    next_poll = 0.0
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
            writer.close()
            return
        except (TimeoutError, OSError):
            pass
        if time.monotonic() >= next_poll:
            if await poll() is not None:
                return
            next_poll = time.monotonic() + 0.5
        await asyncio.sleep(interval)
