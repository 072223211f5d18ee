"""``make bench``: run every benchmark and write BENCHMARKS.md with the machine and the command."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from benchmarks import agent, drift, fleet, foundation, fuzz, quantization, server, soak, training, updates
from benchmarks.machine import describe_machine

OUT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def main() -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    console = Console(stderr=True)
    sections = []
    for name, bench in (
        ("foundation", foundation.run),
        ("training", training.run),
        ("quantization", quantization.run),
        ("agent", agent.run),
        ("updates", updates.run),
        ("server", server.run),
        ("drift", drift.run),
        ("fuzz", fuzz.run),
        ("fleet", fleet.run),
        ("soak", soak.run),
    ):
        with console.status(f"benchmark: {name}"):
            sections.append(bench())
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (`python -m benchmarks`); each figure is compared with its baseline measured "
        "in the same run, and repeated measurements are quoted as medians.\n\n"
        f"- machine: {describe_machine()}\n"
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}\n\n"
    )
    OUT.write_text(header + "\n".join(sections))
    console.print(f"wrote {OUT}")


main()
