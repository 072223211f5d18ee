"""``edgefleet server``: the fleet server with its embedded defaults (SQLite, amqtt)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["server"]


def server(
    host: Annotated[str | None, typer.Option(help="HTTP address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="MQTT port of the embedded broker")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="where the database and packages live")] = None,
) -> None:
    """Serve the fleet API and the embedded MQTT broker until Ctrl-C (settings: EDGEFLEET_SERVER_*)."""
    from edgefleet.logs import configure
    from fleet_server import ServerSettings, get_settings, serve

    configure()
    base = get_settings()
    overrides: dict[str, object] = {
        k: v for k, v in {"http_host": host, "http_port": port, "data_dir": data_dir}.items() if v is not None
    }
    if mqtt_port is not None:
        overrides["mqtt"] = base.mqtt.model_copy(update={"port": mqtt_port})
    settings = ServerSettings.model_validate(base.model_dump() | overrides)
    url = f"http://{settings.http_host}:{settings.http_port}"
    broker = "embedded" if settings.mqtt.embedded_broker else "external"
    Console(stderr=True).print(
        f"fleet server: API {url}/api/v1 · docs {url}/docs · metrics {url}/metrics · "
        f"MQTT {settings.mqtt.host}:{settings.mqtt.port} ({broker}) · database {settings.resolved_database_url()}"
    )
    serve(settings)
