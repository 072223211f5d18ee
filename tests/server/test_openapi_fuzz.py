"""Schemathesis fuzzes every operation of the server's own OpenAPI spec, past its auth: nothing answers 5xx.

The spec comes from the app itself, so a new route is fuzzed without touching this file. The requests go to a real
server (uvicorn on a thread, on SQLite and on PostgreSQL) that trusts a signing key, so that uploads reach the package
checks instead of the "no trusted keys" 503 that a server without keys answers by design. One server per database
for the whole module: a server per operation would spend most of the run starting servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from edgefleet.signing import generate_keys
from fleet_server import MqttSettings, ServerHandle, ServerSettings
from fleet_server.app import create_app
from tests.infra import PostgresCluster
from tests.server.conftest import admin_headers
from tests.support import free_port

pytestmark = pytest.mark.integration

# small and fixed, so that the run is bounded and a failure replays as it was found
_MAX_EXAMPLES = 25
_CONFIG = {
    "generation": {"mode": "all", "max-examples": _MAX_EXAMPLES, "deterministic": True},
    "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
}

# create_app starts nothing: its spec is read without a server. Loaded from the app and not from a running
# server's /openapi.json because schemathesis.pytest.from_fixture needs Node._nodeid, which pytest 9.2 removed.
schema = schemathesis.openapi.from_dict(
    create_app(ServerSettings(data_dir=Path("unused"))).openapi(), config=schemathesis.Config.from_dict(_CONFIG)
)


def _settings(tmp: Path, database_url: str) -> ServerSettings:
    _, public_key = generate_keys(tmp / "keys")
    return ServerSettings(
        data_dir=tmp / "server",
        database_url=database_url,
        http_port=free_port(),
        mqtt=MqttSettings(port=free_port()),
        trusted_keys=[public_key],
        max_package_bytes=64 * 1024,
    )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    tmp = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp / 'fleet.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        database_url = cluster.create_database()
    handle = ServerHandle(_settings(tmp, database_url))
    handle.start()
    yield handle
    handle.stop()


@schema.parametrize()
@settings(max_examples=_MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_server_error(case: schemathesis.Case, fuzzed_server: ServerHandle) -> None:
    # the admin token reaches every route, so the fuzzed input gets past auth to the code that reads it
    case.call_and_validate(
        base_url=fuzzed_server.base_url, headers=admin_headers(fuzzed_server), checks=[not_a_server_error]
    )
