"""Built-in device profiles: what each class of device can run, and how much slower than this machine.

How ``latency_factor`` is derived: it is the single-thread inference time of a small model on the device
divided by its time on the reference core (an AMD EPYC server vCPU, this machine's kind). No published
benchmark runs the same small CNN on every device, so the factor is the ratio of Geekbench 6 single-core
scores, the one CPU benchmark published for boards, phones and x86 alike:

    latency_factor = REFERENCE_GEEKBENCH6_SINGLE / geekbench6_single(device)

Each device's score and where it comes from are in ``EVIDENCE`` below; where no Geekbench 6 run of the
device was published, the score is carried over from a published run of the same core (by clock, or by a
Geekbench 5 → 6 ratio measured on another board), and the basis says so. Geekbench's workloads are
general-purpose (its machine-learning part is small), so a factor is an estimate within perhaps ±30 %
for int8/fp32 convolutions, to be replaced by measurements on real devices. A factor below 1 (a recent
iPhone) means the emulator adds no delay: the device is faster than the reference core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edgefleet.errors import InputError
from edgefleet.profile import DeviceProfile

__all__ = ["EVIDENCE", "PROFILES", "REFERENCE_GEEKBENCH6_SINGLE", "Evidence", "get_profile"]

# The reference core's Geekbench 6 single-core score. No run of a cloud EPYC vCPU was found published;
# Geekbench 6 scores a Core i7-12700 at 2,500 by construction (its baseline), and a server core at
# 2.5-3.7 GHz scores below that desktop part: 1,800 is the estimate, the one figure here without a source.
REFERENCE_GEEKBENCH6_SINGLE: Final = 1800.0

_SBC_RESULTS = "https://github.com/geerlingguy/sbc-reviews/blob/master/web/data/results.yml"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A device's Geekbench 6 single-core score, the published sources it rests on, and how it was obtained."""

    geekbench6_single: float
    sources: tuple[str, ...]
    basis: str

    @property
    def latency_factor(self) -> float:
        return round(REFERENCE_GEEKBENCH6_SINGLE / self.geekbench6_single, 2)


_PI3_GB6 = 108 * 289 / 271  # the Pi 3B+'s Geekbench 5 score, times the Pi 4's Geekbench 6 / 5 ratio

EVIDENCE: Final[dict[str, Evidence]] = {
    "rpi-zero-2w": Evidence(
        _PI3_GB6 * 1.0 / 1.4,
        (_SBC_RESULTS, "https://github.com/geerlingguy/sbc-reviews/issues/16"),
        "the Pi 3B+'s estimate (same Cortex-A53 core) scaled by clock, 1.0 / 1.4 GHz",
    ),
    "rpi3b": Evidence(
        _PI3_GB6,
        (_SBC_RESULTS, "https://github.com/geerlingguy/sbc-reviews/issues/16"),
        "Geekbench 5 single 108, times 289/271 (the Pi 4B's Geekbench 6 / Geekbench 5 single scores)",
    ),
    "rpi4b": Evidence(289, (_SBC_RESULTS, "https://github.com/geerlingguy/sbc-reviews/issues/4"), "published run"),
    "rpi5": Evidence(904, (_SBC_RESULTS, "https://github.com/geerlingguy/sbc-reviews/issues/21"), "published run"),
    "jetson-orin-nano": Evidence(
        904 * 1.5 / 2.4 * 1.20 * 1.07,
        (
            "https://github.com/geerlingguy/sbc-reviews/issues/21",
            "https://developer.arm.com/Processors/Cortex-A78AE",
        ),
        "the Pi 5's Cortex-A76 score scaled by clock (1.5 / 2.4 GHz) and Arm's stated IPC gains, "
        "A77 over A76 (+20 %) and A78 over A77 (+7 %); CPU only, the GPU is not counted",
    ),
    "x86-gateway": Evidence(
        1185,
        (_SBC_RESULTS, "https://github.com/geerlingguy/sbc-reviews/issues/48"),
        "published run of an Intel N100 gateway board (Radxa X4)",
    ),
    "android-phone": Evidence(
        1410,
        (
            "https://notebookcheck.com/Geekbench-6-Apple-iPhone-14-Pro-Max-stellt-sich-Samsung-Galaxy-S23-Ultra-"
            "und-Google-Pixel-7-Pro-in-neuem-Benchmark.694639.0.html",
        ),
        "published run of a Google Pixel 7 Pro (Tensor G2)",
    ),
    "iphone": Evidence(
        2595,
        (
            "https://phonearena.com/news/Alleged-iPhone-16-Pro-benchmark-scores-suggest-supercharged-A18-Pro-"
            "chip-is-barely-any-faster_id162430",
        ),
        "published run of an iPhone 15 (A16 Bionic)",
    ),
}

PROFILES: Final[dict[str, DeviceProfile]] = {
    p.id: p
    for p in (
        DeviceProfile(
            id="rpi-zero-2w", name="Raspberry Pi Zero 2 W", arch="arm64", cpu="RP3A0, 4x Cortex-A53 @ 1.0 GHz",
            cores=4, memory_mb=512, runtimes=["onnxruntime", "litert", "tflite-runtime"],
            latency_factor=EVIDENCE["rpi-zero-2w"].latency_factor,
        ),
        DeviceProfile(
            id="rpi3b", name="Raspberry Pi 3 Model B+", arch="arm64", cpu="BCM2837B0, 4x Cortex-A53 @ 1.4 GHz",
            cores=4, memory_mb=1024, runtimes=["onnxruntime", "litert", "tflite-runtime"],
            latency_factor=EVIDENCE["rpi3b"].latency_factor,
        ),
        DeviceProfile(
            id="rpi4b", name="Raspberry Pi 4 Model B", arch="arm64", cpu="BCM2711, 4x Cortex-A72 @ 1.8 GHz",
            cores=4, memory_mb=4096, runtimes=["onnxruntime", "litert", "tflite-runtime"], has_camera=True,
            latency_factor=EVIDENCE["rpi4b"].latency_factor,
        ),
        DeviceProfile(
            id="rpi5", name="Raspberry Pi 5", arch="arm64", cpu="BCM2712, 4x Cortex-A76 @ 2.4 GHz",
            cores=4, memory_mb=8192, runtimes=["onnxruntime", "litert"], has_camera=True,
            latency_factor=EVIDENCE["rpi5"].latency_factor,
        ),
        DeviceProfile(
            id="jetson-orin-nano", name="NVIDIA Jetson Orin Nano 8GB", arch="arm64",
            cpu="6x Cortex-A78AE @ 1.5 GHz, Ampere GPU (1024 CUDA cores)", cores=6, memory_mb=8192,
            runtimes=["onnxruntime", "litert"], accelerators=["cuda", "tensorrt"], has_camera=True,
            latency_factor=EVIDENCE["jetson-orin-nano"].latency_factor,
        ),
        DeviceProfile(
            id="x86-gateway", name="x86-64 industrial gateway", arch="x86_64", cpu="Intel N100, 4 cores @ 3.4 GHz",
            cores=4, memory_mb=8192, runtimes=["onnxruntime", "litert"],
            latency_factor=EVIDENCE["x86-gateway"].latency_factor,
        ),
        DeviceProfile(
            id="android-phone", name="Android phone (Google Pixel 7 Pro)", arch="arm64",
            cpu="Tensor G2, 2x Cortex-X1 + 2x A78 + 4x A55", cores=8, memory_mb=12288,
            runtimes=["litert", "onnxruntime", "executorch"], accelerators=["gpu", "nnapi", "tpu"], has_camera=True,
            latency_factor=EVIDENCE["android-phone"].latency_factor,
        ),
        DeviceProfile(
            id="iphone", name="iPhone 15", arch="arm64", cpu="A16 Bionic, 2 performance + 4 efficiency cores",
            cores=6, memory_mb=6144, runtimes=["coreml", "executorch", "litert", "onnxruntime"],
            accelerators=["neural-engine", "gpu"], has_camera=True, latency_factor=EVIDENCE["iphone"].latency_factor,
        ),
    )
}  # fmt: skip


def get_profile(profile_id: str) -> DeviceProfile:
    """The built-in profile ``profile_id``; raises InputError naming the known ones."""
    try:
        return PROFILES[profile_id]
    except KeyError:
        raise InputError(
            f"unknown device profile {profile_id!r}", hint=f"choose from: {', '.join(sorted(PROFILES))}"
        ) from None
