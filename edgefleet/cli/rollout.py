"""``edgefleet rollout create|status|pause|resume|abort``: staged rollouts, driven over the server's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.cli._server import answer, server_client
from edgefleet.errors import InputError

__all__ = ["abort", "app", "create", "parse_waves", "pause", "resume", "status"]

app = typer.Typer(help="Staged rollouts: waves, gates, pause, resume, abort.", no_args_is_help=True)

ServerOption = Annotated[
    str, typer.Option("--server", envvar="EDGEFLEET_SERVER_URL", help="the fleet server's address")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="EDGEFLEET_TOKEN", help="an operator's API token", show_default=False)
]
_DEFAULT_SERVER = "http://127.0.0.1:8080"


def parse_waves(text: str) -> list[dict[str, float]]:
    """``1,10%,50%,100%`` → a canary device, then shares of the selected devices; raises InputError."""
    waves: list[dict[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            waves.append({"percent": float(part[:-1])} if part.endswith("%") else {"devices": int(part)})
        except ValueError as err:
            raise InputError(
                f"wave {part!r} is neither a device count nor a share", hint="write waves like 1,10%,50%,100%"
            ) from err
    return waves


def _call(server: str, token: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with server_client(server, token) as client:
        response = client.request(method, f"/api/v1{path}", json=body)
    return answer(response, hints=_HINTS)


_HINTS = {
    401: "pass an API token with --token or EDGEFLEET_TOKEN",
    403: "this token's role may not do that: use an operator's token",
}


def _show(rollout: dict[str, Any]) -> None:
    console = Console()
    console.print(
        f"[bold]{rollout['id']}[/] {rollout['package']} · [bold]{rollout['state']}[/] · "
        f"wave {rollout['wave']} of {rollout['waves']}" + (f" · {rollout['reason']}" if rollout["reason"] else ""),
        highlight=False,
    )
    devices = ", ".join(f"{n} {state}" for state, n in sorted(rollout["devices"].items())) or "none yet"
    console.print(f"devices: {devices}", highlight=False)
    gates = Table("gate", "value", "threshold", "passed", "detail", title="current wave's gates")
    for gate in rollout["gates"]:
        value = "–" if gate["value"] is None else f"{gate['value']:.3g}"
        mark = "[green]yes[/]" if gate["passed"] else "[red]no[/]"
        gates.add_row(gate["name"], value, f"{gate['threshold']:g}", mark, gate["detail"])
    console.print(gates)


@app.command()
def create(
    package: Annotated[str, typer.Argument(help="name@version, as uploaded to the registry")],
    tag: Annotated[list[str] | None, typer.Option(help="devices with every one of these tags")] = None,
    profile: Annotated[list[str] | None, typer.Option(help="devices of one of these profiles")] = None,
    device: Annotated[list[str] | None, typer.Option(help="these devices by id")] = None,
    waves: Annotated[str, typer.Option(help="device counts and shares, cumulative")] = "1,10%,50%,100%",
    bake: Annotated[float, typer.Option(help="seconds each wave runs before its gates are judged")] = 600.0,
    on_failure: Annotated[str, typer.Option(help="pause or abort when a gate fails")] = "pause",
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Start a staged rollout of PACKAGE to the selected devices."""
    body = {
        "package": package,
        "selector": {"tags": tag or [], "profiles": profile or [], "device_ids": device or []},
        "waves": parse_waves(waves),
        "gates": {"bake_s": bake},
        "on_failure": on_failure,
    }
    _show(_call(server, token, "POST", "/rollouts", body))


@app.command()
def status(
    rollout_id: Annotated[str | None, typer.Argument(help="one rollout; none: every rollout")] = None,
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Show a rollout's state, devices and gates, or list every rollout."""
    if rollout_id is not None:
        _show(_call(server, token, "GET", f"/rollouts/{rollout_id}"))
        return
    table = Table("id", "package", "state", "wave", "devices")
    for r in _call(server, token, "GET", "/rollouts"):
        devices = ", ".join(f"{n} {s}" for s, n in sorted(r["devices"].items()))
        table.add_row(r["id"], r["package"], r["state"], f"{r['wave']}/{r['waves']}", devices)
    Console().print(table)


@app.command()
def pause(
    rollout_id: str,
    reason: Annotated[str, typer.Option(help="why, for the audit trail")] = "",
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Assign no more devices until resumed."""
    _show(_call(server, token, "POST", f"/rollouts/{rollout_id}/pause", {"reason": reason}))


@app.command()
def resume(rollout_id: str, server: ServerOption = _DEFAULT_SERVER, token: TokenOption = None) -> None:
    """Go on from the current wave."""
    _show(_call(server, token, "POST", f"/rollouts/{rollout_id}/resume"))


@app.command()
def abort(
    rollout_id: str,
    reason: Annotated[str, typer.Option(help="why, for the audit trail")] = "",
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Stop for good and roll back every device the rollout reached."""
    _show(_call(server, token, "POST", f"/rollouts/{rollout_id}/abort", {"reason": reason}))
