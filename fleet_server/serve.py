"""Run the server with uvicorn: blocking for the command line, or in a thread for the demo and tests."""

from __future__ import annotations

import threading
import time

import uvicorn

from edgefleet.errors import ServerError
from fleet_server.app import create_app
from fleet_server.settings import ServerSettings

__all__ = ["ServerHandle", "serve"]


def _config(settings: ServerSettings) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning", lifespan="on"
    )


def serve(settings: ServerSettings) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    uvicorn.Server(_config(settings)).run()


class ServerHandle:
    """The server on a background thread, started and stopped by its owner (uvicorn leaves signals alone there)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._server = uvicorn.Server(_config(settings))
        self._thread = threading.Thread(target=self._server.run, name="fleet-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start serving; raises ServerError when the server has not started within ``timeout_s``."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServerError(
                    f"the fleet server did not start on {self.base_url}",
                    hint="is the port taken? look at the log lines above",
                )
            time.sleep(0.05)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Shut down gracefully and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
