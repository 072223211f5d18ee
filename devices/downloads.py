"""A device's bad link to the package server: its downloads go through its own shaping proxy.

A slow or failing download is a property of the device's network path, not of the server, so the emulator
puts a ``CuttableProxy`` with a ``Shaping`` on that path: every package URL a rollout assigns to the device
is rewritten, before the agent's updater sees it, to the same path on a proxy in front of the URL's host.
The agent's own download code (HTTP Range, resume after a cut, timeouts) does the rest. Only ``http`` URLs
are routed: an ``https`` URL's certificate names the server's host, which the proxy's address is not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from devices.netcut import CuttableProxy, Shaping
from edgefleet.messages import AssignCommand, CommandV1

__all__ = ["DownloadRoute"]

log = logging.getLogger(__name__)


class DownloadRoute:
    """Rewrites one device's assigned package URLs to go through a proxy shaped by ``shaping`` (one per host)."""

    def __init__(self, device_id: str, shaping: Shaping) -> None:
        self.device_id = device_id
        self._shaping = shaping
        self._lock = threading.Lock()
        self.proxies: dict[tuple[str, int], CuttableProxy] = {}

    def wrap(self, take: Callable[[], list[CommandV1]]) -> Callable[[], list[CommandV1]]:
        """``take`` (the link's ``commands``) with every assignment's URL routed through the proxy."""
        return lambda: [self.route(command) for command in take()]

    def route(self, message: CommandV1) -> CommandV1:
        """``message`` with its package URL on the proxy, when it is an assignment of an ``http`` URL."""
        command = message.command
        if not isinstance(command, AssignCommand):
            return message
        parts = urlsplit(command.url)
        if parts.scheme != "http" or parts.hostname is None:
            log.warning("fleet.download_not_routed", extra={"device": self.device_id, "url": command.url})
            return message
        target = (parts.hostname, parts.port or 80)
        with self._lock:
            proxy = self.proxies.get(target)
            if proxy is None:
                proxy = self.proxies[target] = CuttableProxy(*target, shaping=self._shaping)
        routed = urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))
        log.info("fleet.download_routed", extra={"device": self.device_id, "url": routed})
        return message.model_copy(update={"command": command.model_copy(update={"url": routed})})

    def close(self) -> None:
        with self._lock:
            proxies, self.proxies = list(self.proxies.values()), {}
        for proxy in proxies:
            proxy.close()
