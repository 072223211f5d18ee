"""Fixtures of the agent's tests: a tiny signed sensor classifier package, a real amqtt broker, a raw subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent import AgentSettings, BrokerSettings, SimulatedSourceSettings
from edgefleet.manifest import (
    ArtifactFormat,
    ChannelSpec,
    DType,
    ExpectedOutputs,
    FeatureReference,
    Histogram,
    Manifest,
    Precision,
    ReferenceProfile,
    SensorPreprocessing,
    Task,
    TensorSpec,
    TestVectors,
)
from edgefleet.sensor_sim import CHANNELS, FAULTS, SAMPLE_RATE_HZ, WINDOW_LENGTH, Recording
from tests.support import free_port, wait_until

CONFIDENCE_EDGES = [0.0, 0.25, 0.5, 0.75, 1.0]


@dataclass(frozen=True)
class TinyPackage:
    path: Path
    public_key: Path
    manifest: Manifest


def _tiny_onnx(path: Path, seed: int) -> None:
    """x (N, C, L) → mean over time → Gemm → Softmax → probs (N, classes): small, but a real classifier graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(len(CHANNELS), len(FAULTS))).astype(np.float32)
    bias = rng.normal(size=len(FAULTS)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2], keepdims=0),
            helper.make_node("Gemm", ["mean", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "tiny-pump",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", len(CHANNELS), WINDOW_LENGTH])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", len(FAULTS)])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.19 (the oldest the agent extra allows) still reads
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _run(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": batch})[0])


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> TinyPackage:
    """A signed package of a tiny ONNX classifier over the simulator's channels, labels FAULTS, with a reference
    profile, test vectors, and two artifacts: fp32 and one labelled int8 (the agent must pick that one)."""
    from edgefleet.package import build_package, describe_artifact
    from edgefleet.preprocess import prepare_sensor_windows
    from edgefleet.signing import generate_keys, load_private_key
    from edgefleet.sketch import count_into, reference_histogram, sensor_features
    from edgefleet.tensors import encode_tensor

    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    raw = np.stack([Recording.random(f, rng).window(i, rng) for f in range(len(FAULTS)) for i in range(10)])
    channels = [
        ChannelSpec(name=name, unit=unit, mean=float(raw[:, c].mean()), std=float(raw[:, c].std()) or 1.0)
        for c, (name, unit) in enumerate(CHANNELS)
    ]
    preprocessing = SensorPreprocessing(channels=channels, window_length=WINDOW_LENGTH, sample_rate_hz=SAMPLE_RATE_HZ)
    # the int8 artifact is the fp32 graph under another name: the agent picks by the manifest, not the bytes
    files = {"model-fp32.onnx": root / "model-fp32.onnx", "model-int8.onnx": root / "model-int8.onnx"}
    for path in files.values():
        _tiny_onnx(path, seed=1)
    artifacts = [
        describe_artifact(name, path, format=ArtifactFormat.ONNX, precision=precision, runtime="onnxruntime>=1.19")
        for (name, path), precision in zip(files.items(), (Precision.FP32, Precision.INT8), strict=True)
    ]
    batch = prepare_sensor_windows(raw, preprocessing)
    probs = _run(files["model-fp32.onnx"], batch)
    features = sensor_features(raw, [c.name for c in channels])
    reference = ReferenceProfile(
        sample_count=len(raw),
        features=[FeatureReference(name=n, histogram=reference_histogram(v)) for n, v in features.items()],
        class_counts=count_into(np.arange(len(FAULTS) + 1, dtype=np.float64) - 0.5, probs.argmax(1)),
        confidence=Histogram(edges=CONFIDENCE_EDGES, counts=count_into(CONFIDENCE_EDGES, probs.max(1))),
    )
    expected = ExpectedOutputs(atol=1e-4, outputs={"probs": encode_tensor(probs[:2])})
    manifest = Manifest(
        name="tiny-pump",
        version="1.0.0",
        task=Task.CLASSIFICATION,
        created_at="2026-11-24T00:00:00Z",
        inputs=[TensorSpec(name="x", shape=[None, len(CHANNELS), WINDOW_LENGTH], dtype=DType.FLOAT32, layout="NCW")],
        outputs=[TensorSpec(name="probs", shape=[None, len(FAULTS)], dtype=DType.FLOAT32)],
        labels=list(FAULTS),
        preprocessing=preprocessing,
        artifacts=artifacts,
        reference_profile=reference,
        test_vectors=TestVectors(
            inputs={"x": encode_tensor(batch[:2])}, expected={a.path: expected for a in artifacts}
        ),
    )
    private_key, public_key = generate_keys(root / "keys")
    out = build_package(manifest, files, load_private_key(private_key), root / "tiny-pump-1.0.0.efpkg")
    return TinyPackage(out, public_key, manifest)


@pytest.fixture
def mqtt_broker() -> Iterator[int]:
    """A real amqtt 0.12 broker on a free port, on its own event loop in a thread; yields the port."""
    import logging

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    port = free_port()
    # amqtt 0.11+ takes plugins as a dict of class path → options
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    with running_amqtt(config, "test-amqtt"):
        yield port


@contextlib.contextmanager
def running_amqtt(config: dict[str, Any], name: str) -> Iterator[None]:
    """An amqtt broker with ``config`` on its own event loop in a thread, for the ``with`` block."""
    from amqtt.broker import Broker

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()

    async def _start() -> Broker:
        broker = Broker(config)
        await broker.start()
        return broker

    broker = asyncio.run_coroutine_threadsafe(_start(), loop).result(10)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    loop.close()


class Subscriber:
    """A raw paho client that keeps every message it receives: (topic, payload, retained)."""

    def __init__(self, port: int, pattern: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:12]}")
        subscribed = threading.Event()
        self._client.on_message = self._keep
        self._client.on_subscribe = lambda *_args: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(pattern, qos=1)
        self._client.loop_start()
        # live messages published from now on reach this subscriber
        assert subscribed.wait(10), "the broker did not acknowledge the subscription"

    def _keep(self, _client: object, _userdata: object, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def wait_for(self, topic: str, count: int = 1, timeout_s: float = 10.0) -> list[tuple[bytes, bool]]:
        """The messages on ``topic`` once at least ``count`` have arrived."""
        wait_until(lambda: len(self.on(topic)) >= count, timeout_s=timeout_s)
        return self.on(topic)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscribe(mqtt_broker: int) -> Iterator[Any]:
    """``subscribe(pattern)`` makes a Subscriber on the test broker; each is closed after the test."""
    made: list[Subscriber] = []

    def _make(pattern: str) -> Subscriber:
        made.append(Subscriber(mqtt_broker, pattern))
        return made[-1]

    yield _make
    for subscriber in made:
        subscriber.close()


def agent_settings(tiny: TinyPackage, data_dir: Path, port: int, **changes: object) -> AgentSettings:
    """Settings of device ``dev-1`` (profile rpi4b) running ``tiny`` against the broker on ``port``."""
    base: dict[str, object] = {
        "device_id": "dev-1",
        "profile": "rpi4b",
        "data_dir": data_dir,
        "broker": BrokerSettings(port=port),
        "package": tiny.path,
        "trusted_keys": [tiny.public_key],
        "telemetry_interval_s": 0.05,
        "source": SimulatedSourceSettings(fault="bearing_outer", windows_per_s=0),
    }
    return AgentSettings.model_validate(base | changes)
