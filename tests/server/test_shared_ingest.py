"""Ingest against Mosquitto: one worker stores everything; two workers in a share group split the telemetry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy import Engine, func, select

from edgefleet.messages import ActiveModel, EventKind, EventV1, StatusV1, TelemetryV1
from edgefleet.topics import TopicKind, topic
from fleet_server.db import Device, Event, Telemetry, make_engine, make_session_factory, upgrade
from fleet_server.ingest import Ingest, IngestMetrics
from fleet_server.settings import MqttSettings
from tests.infra import PostgresCluster
from tests.support import wait_until

MODEL = ActiveModel(name="pump", version="1.2.3", sha256="a" * 64, artifact="pump-int8.onnx")
DEVICES = [f"pump-{n}" for n in range(6)]
PER_DEVICE = 50
RESENT = 10  # the first seqs of every device are published twice, as QoS 1 may deliver them


class Worker:
    """One ingest worker, as a separate server process would run it: its own engine, connection and counters."""

    def __init__(self, database_url: str, port: int, share_group: str | None = None) -> None:
        self.engine = make_engine(database_url)
        self.registry = CollectorRegistry()
        self.ingest = Ingest(
            make_session_factory(self.engine),
            IngestMetrics(self.registry),
            host="127.0.0.1",
            port=port,
            max_payload_bytes=64 * 1024,
            queue_size=10_000,
            share_group=share_group,
        )
        self.ingest.start()
        wait_until(lambda: self.ingest.is_connected)

    def count(self, name: str, **labels: str) -> int:
        return int(self.registry.get_sample_value(name, labels) or 0)

    def stop(self) -> None:
        self.ingest.stop()
        self.engine.dispose()


def _device(port: int, device_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _telemetry(device_id: str, seq: int) -> str:
    return TelemetryV1(
        device_id=device_id, seq=seq, ts=time.time(), interval_s=10, model=MODEL, inference_count=seq
    ).model_dump_json()


def _migrate(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()


def _stored(engine: Engine, table: type[Telemetry] | type[Event]) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        return [(row.device_id, row.seq) for row in connection.execute(select(table.device_id, table.seq))]


@pytest.fixture
def two_workers(postgres: PostgresCluster, mosquitto_port: int) -> Iterator[tuple[Worker, Worker]]:
    """Two workers in share group "fleet", on one fresh PostgreSQL database and one Mosquitto."""
    url = postgres.create_database()
    _migrate(url)
    workers = (Worker(url, mosquitto_port, "fleet"), Worker(url, mosquitto_port, "fleet"))
    yield workers
    for worker in workers:
        worker.stop()


@pytest.mark.integration
def test_two_workers_share_the_telemetry_and_store_each_seq_once(
    two_workers: tuple[Worker, Worker], mosquitto_port: int
) -> None:
    clients = [_device(mosquitto_port, device_id) for device_id in DEVICES]
    pending = [
        client.publish(topic(device_id, TopicKind.TELEMETRY), _telemetry(device_id, seq), qos=1)
        for client, device_id in zip(clients, DEVICES, strict=True)
        for seq in [*range(PER_DEVICE), *range(RESENT)]
    ]
    for message in pending:
        message.wait_for_publish(10)
    expected = {(device_id, seq) for device_id in DEVICES for seq in range(PER_DEVICE)}
    first, second = two_workers

    def handled() -> int:
        return sum(
            worker.count("edgefleet_ingest_messages_total", kind="telemetry")
            + worker.count("edgefleet_ingest_duplicates_total")
            for worker in two_workers
        )

    # the counters move before the batch commits: wait for the rows as well
    wait_until(lambda: handled() == len(pending) and len(_stored(first.engine, Telemetry)) >= len(expected))
    assert sorted(_stored(first.engine, Telemetry)) == sorted(expected)  # every seq, none twice
    assert first.count("edgefleet_ingest_messages_total", kind="telemetry") > 0
    assert second.count("edgefleet_ingest_messages_total", kind="telemetry") > 0
    assert sum(worker.count("edgefleet_ingest_duplicates_total") for worker in two_workers) == len(DEVICES) * RESENT
    assert all(worker.count("edgefleet_ingest_rejected_total", reason="store_failed") == 0 for worker in two_workers)
    with first.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Device)).scalar_one() == len(DEVICES)
    for client in clients:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def one_worker(database_url: str, mosquitto_port: int) -> Iterator[Worker]:
    """A worker without share group on a fresh database (SQLite and PostgreSQL) and its own Mosquitto."""
    _migrate(database_url)
    worker = Worker(database_url, mosquitto_port)
    yield worker
    worker.stop()


@pytest.mark.integration
def test_one_worker_stores_status_telemetry_and_events_from_mosquitto(one_worker: Worker, mosquitto_port: int) -> None:
    worker = one_worker
    client = _device(mosquitto_port, "pump-1")
    status = StatusV1(
        device_id="pump-1", seq=1, ts=time.time(), state="online", agent_version="0.1.0", profile="rpi4", model=MODEL
    )
    event = EventV1(device_id="pump-1", seq=0, ts=time.time(), kind=EventKind.COMMITTED, package="pump@1.2.3")
    for name, payload in (
        (topic("pump-1", TopicKind.STATUS), status.model_dump_json()),
        (topic("pump-1", TopicKind.TELEMETRY), _telemetry("pump-1", 0)),
        (topic("pump-1", TopicKind.EVENTS), event.model_dump_json()),
    ):
        client.publish(name, payload, qos=1).wait_for_publish(5)
    wait_until(lambda: _stored(worker.engine, Event) == [("pump-1", 0)])
    assert _stored(worker.engine, Telemetry) == [("pump-1", 0)]
    with worker.engine.connect() as connection:
        device = connection.execute(select(Device.state, Device.model_version)).one()
    assert tuple(device) == ("online", "1.2.3")
    client.disconnect()
    client.loop_stop()


@pytest.mark.unit
def test_a_share_group_on_the_embedded_broker_is_refused_saying_what_to_set() -> None:
    with pytest.raises(ValidationError, match="embedded_broker=false"):
        MqttSettings(share_group="fleet")
    assert MqttSettings(share_group="fleet", embedded_broker=False).share_group == "fleet"
