"""``edgefleet agent run`` is the same command as ``edgefleet-agent run``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


def test_edgefleet_agent_mounts_the_agents_own_run_command() -> None:
    import edge_agent.cli
    from edgefleet.cli.agent import app

    assert [c.callback for c in app.registered_commands] == [edge_agent.cli.run]
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    assert "--config" in result.output
    assert "--once" in result.output
