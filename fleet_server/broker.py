"""The embedded MQTT broker (amqtt, in the server's event loop), so one command runs everything."""

from __future__ import annotations

import logging
from typing import Any

from amqtt.broker import Broker

from edgefleet.errors import ServerError

__all__ = ["EmbeddedBroker"]

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """amqtt listening on one TCP port; anonymous on loopback until enrollment brings credentials."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        # amqtt 0.11+ takes plugins as a dict; the default set also logs every packet, which we do not want
        self._config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker: Broker | None = None

    async def start(self) -> None:
        """Listen; raises ServerError when the port is taken or the broker cannot start."""
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(self._config)
        try:
            await self._broker.start()
        except Exception as err:  # amqtt wraps every start failure in its own BrokerError
            raise ServerError(
                f"the embedded MQTT broker cannot listen on {self.host}:{self.port}: {err}",
                hint="choose another port with --mqtt-port, or stop what is using this one",
            ) from err
        log.info("broker.started", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        """Close every client connection and the listener."""
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
            log.info("broker.stopped")
