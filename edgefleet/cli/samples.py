"""``edgefleet samples pull``: ask a device for its drifted and low-confidence inputs and save them for training."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from edgefleet.cli._server import answer, server_client
from edgefleet.cli.rollout import ServerOption, TokenOption
from edgefleet.errors import EdgefleetError

if TYPE_CHECKING:
    import httpx

__all__ = ["DeviceSilent", "app", "pull"]

app = typer.Typer(help="Samples devices keep for retraining.", no_args_is_help=True)
_out = Console()
_DEFAULT_SERVER = "http://127.0.0.1:8080"


class DeviceSilent(EdgefleetError):
    """The device did not send its samples in time."""

    exit_code = 1


@app.command()
def pull(
    device: Annotated[str, typer.Option(help="the device id")],
    out: Annotated[Path, typer.Option(help="the folder to add the samples to (train with --extra-data DIR)")],
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
    max_count: Annotated[int, typer.Option(min=1, max=100_000, help="most samples to ask for")] = 256,
    timeout: Annotated[float, typer.Option(min=1, help="seconds to wait for the device")] = 120.0,
) -> None:
    """Ask DEVICE for its kept samples, wait for them, and add them to OUT (a .npz and rows of labels.csv)."""
    from edgefleet.samples import add_to_folder, decode_samples

    with server_client(server, token, timeout_s=60) as client:
        record = _answer(client.post(f"/api/v1/devices/{device}/samples:request", json={"max_count": max_count}))
        request_id = record["request_id"]
        with Console(stderr=True).status(f"waiting for {device} to send its samples (request {request_id})"):
            record = _wait(client, device, request_id, timeout)
        if record["count"] == 0:
            _out.print(f"{device} kept no samples (nothing drifted or unsure since its last upload)")
            return
        response = client.get(f"/api/v1/devices/{device}/samples/{request_id}")
        _answer(response, json=False)
    samples = decode_samples(response.content, max_bytes=1 << 31, where=f"the samples of {device}")
    path = add_to_folder(out, f"{device}-{request_id}", samples)
    labelled = int((samples.labels >= 0).sum())
    _out.print(
        f"wrote {len(samples)} samples of {device} to [bold]{path}[/] ({labelled} with their true label); "
        f"fill the empty labels in {out / 'labels.csv'}, then train with --extra-data {out}"
    )


def _wait(client: httpx.Client, device: str, request_id: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        records = _answer(client.get(f"/api/v1/devices/{device}/samples"))
        record = next((r for r in records if r["request_id"] == request_id), None)
        if record is not None and record["state"] == "received":
            return record
        if time.monotonic() > deadline:
            raise DeviceSilent(
                f"{device} did not send its samples within {timeout_s:.0f} s",
                hint="check it is online (edgefleet's device list), then pull again or raise --timeout",
            )
        time.sleep(0.5)


def _answer(response: httpx.Response, *, json: bool = True) -> Any:
    return answer(
        response,
        default_hint="check --device, and that --token is an operator's token",
        input_codes=(400, 401, 403, 404, 413, 422),
        json=json,
    )
