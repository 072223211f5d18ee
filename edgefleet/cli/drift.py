"""``edgefleet drift device|cohorts|history|alarms``: drift (devices against their own baseline, cohorts against
the reference profile), read over the HTTP API.

``device``, ``cohorts`` and ``alarms`` exit 1 when they show an alarm, so a script or a cron job can act on it;
``history`` only reports (exit 0).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgefleet.cli._server import answer, server_client

__all__ = ["alarms", "app", "cohorts", "device", "history", "spark"]

app = typer.Typer(help="Drift of devices and cohorts against the model's reference profile.", no_args_is_help=True)

ServerOption = Annotated[
    str, typer.Option("--server", envvar="EDGEFLEET_SERVER_URL", help="the fleet server's address")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="EDGEFLEET_TOKEN", help="a viewer's API token", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the server's answer as JSON, for scripts")]
WindowOption = Annotated[
    float | None, typer.Option("--window", min=1, help="seconds back from now; default: the server's window")
]
_DEFAULT_SERVER = "http://127.0.0.1:8080"
_BARS = " ▁▂▃▄▅▆▇█"
_STYLE = {"ok": "green", "warn": "yellow", "alarm": "bold red", "not-enough-data": "dim"}


def _get(server: str, token: str | None, path: str, params: dict[str, Any]) -> Any:
    query = {k: v for k, v in params.items() if v is not None}
    with server_client(server, token, timeout_s=60) as client:
        response = client.get(f"/api/v1/drift{path}", params=query)
    return answer(response, hints=_HINTS, input_codes=(404, 422))


_HINTS = {
    401: "pass an API token with --token or EDGEFLEET_TOKEN",
    403: "use a viewer's (or higher) token",
    404: "check the id and options",
    422: "check the id and options",
}


def spark(counts: list[int]) -> str:
    """Counts as a row of bar characters, each bin's share of the largest one."""
    top = max(counts, default=0)
    if top <= 0:
        return " " * len(counts)
    return "".join(_BARS[round(c / top * (len(_BARS) - 1))] for c in counts)


def _level(level: str) -> str:
    return f"[{_STYLE.get(level, '')}]{level}[/]"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


_AGAINST = {"device-baseline": "its own baseline", "device-baselines": "its devices' own baselines, added up"}


def _show_report(report: dict[str, Any], title: str) -> None:
    console = Console()
    model = f"{report['model_name']}@{report['model_version']}" if report["model_name"] else "no model"
    console.print(
        f"[bold]{title}[/] · {model} · {_level(report['level'])} · {report['sample_count']} samples in "
        f"{report['intervals']} intervals · estimated accuracy {_num(report['estimated_accuracy'], '.1%')}",
        highlight=False,
    )
    against = _AGAINST.get(str(report.get("reference")), "the package's reference")
    console.print(f"compared with {against}", highlight=False)
    if report["note"]:
        console.print(f"[yellow]{report['note']}[/]", highlight=False)
    if report["features"]:
        table = Table("feature", "level", "PSI", "KS", "live n", "reference", "live")
        for f in report["features"]:
            table.add_row(
                f["name"],
                _level(f["level"]),
                _num(f["psi"]),
                _num(f["ks"]),
                str(f["live_count"]),
                spark(f["reference_counts"]),
                spark(f["live_counts"]),
            )
        console.print(table)
    classes = report.get("classes")
    if classes:
        console.print(
            f"classes: {_level(classes['level'])} chi² {_num(classes['chi2'], '.1f')} p {_num(classes['p_value'], '.2g')}"
            f" · reference {spark(classes['reference_counts'])} · live {spark(classes['live_counts'])}",
            highlight=False,
        )


@app.command()
def device(
    device_id: Annotated[str, typer.Argument(help="the device's id")],
    window: WindowOption = None,
    as_json: JsonOption = False,
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """One device's drift, feature by feature (reference vs live histograms); exit 1 on an alarm."""
    report = _get(server, token, f"/devices/{device_id}", {"window_s": window})
    if as_json:
        _print_json(report)
    else:
        _show_report(report, f"device {device_id}")
    raise typer.Exit(1 if report["level"] == "alarm" else 0)


@app.command()
def cohorts(
    window: WindowOption = None,
    as_json: JsonOption = False,
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Every cohort's drift (model version × profile × tag); exit 1 when one is at alarm."""
    found = _get(server, token, "/cohorts", {"window_s": window})
    if as_json:
        _print_json(found)
    else:
        table = Table("model", "profile", "tag", "devices", "level", "worst feature", "PSI", "samples", "est. accuracy")
        for c in found:
            table.add_row(
                f"{c['model_name']}@{c['model_version']}" if c["model_name"] else "–",
                c["profile"],
                c["tag"] or "(untagged)",
                str(c["devices"]),
                _level(c["level"]),
                c["worst_feature"] or "–",
                _num(c["worst_psi"]),
                str(c["sample_count"]),
                _num(c["estimated_accuracy"], ".1%"),
            )
        Console().print(table)
    raise typer.Exit(1 if any(c["level"] == "alarm" for c in found) else 0)


@app.command()
def history(
    device_id: Annotated[str | None, typer.Option("--device", help="one device's checks only")] = None,
    scope: Annotated[str | None, typer.Option(help="device or cohort")] = None,
    since: Annotated[float | None, typer.Option(min=1, help="only checks this many seconds back")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many rows")] = 50,
    as_json: JsonOption = False,
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """The periodic drift checks, newest first."""
    params = {"device_id": device_id, "scope": scope, "since_s": since, "limit": limit}
    rows = _get(server, token, "/history", params)
    if as_json:
        _print_json(rows)
        return
    table = Table("at", "scope", "device / cohort", "model", "level", "worst feature", "PSI", "samples", "est. acc.")
    for r in rows:
        who = r["device_id"] if r["scope"] == "device" else f"{r['profile']}/{r['tag'] or '(untagged)'}"
        table.add_row(
            r["at"][:19],
            r["scope"],
            who or "–",
            r["model_version"] or "–",
            _level(r["level"]),
            r["worst_feature"] or "–",
            _num(r["worst_psi"]),
            str(r["sample_count"]),
            _num(r["estimated_accuracy"], ".1%"),
        )
    Console().print(table)


@app.command()
def alarms(
    warnings: Annotated[bool, typer.Option("--warnings", help="list warnings too")] = False,
    as_json: JsonOption = False,
    server: ServerOption = _DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Devices and cohorts at alarm in the latest drift check; exit 1 when there is one."""
    found = _get(server, token, "/alarms", {"level": "warn" if warnings else "alarm"})
    if as_json:
        _print_json(found)
    else:
        table = Table("scope", "device / cohort", "model", "level", "worst feature", "PSI", "since")
        for a in found:
            who = a["device_id"] if a["scope"] == "device" else f"{a['profile']}/{a['tag'] or '(untagged)'}"
            table.add_row(
                a["scope"],
                who or "–",
                a["model_version"] or "–",
                _level(a["level"]),
                a["worst_feature"] or "–",
                _num(a["worst_psi"]),
                a["since"][:19],
            )
        Console().print(table if found else "no open drift alarms")
    raise typer.Exit(1 if any(a["level"] == "alarm" for a in found) else 0)
