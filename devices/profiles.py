"""Built-in device profiles: what each class of device can run, and how much slower than this machine."""

from __future__ import annotations

from typing import Final

from edgefleet.errors import InputError
from edgefleet.profile import DeviceProfile

__all__ = ["PROFILES", "get_profile"]

# latency_factor: single-thread inference time of a small CNN relative to a current x86-64 server core.
# Rough figures from public per-core benchmarks (Cortex-A53 ≈ 8x, A72 ≈ 4x, A76 ≈ 2x slower than a
# server core on int8/fp32 convolutions); estimates to be replaced by measurements on real devices.
PROFILES: Final[dict[str, DeviceProfile]] = {
    p.id: p
    for p in (
        DeviceProfile(
            id="rpi-zero-2w", name="Raspberry Pi Zero 2 W", arch="arm64", cpu="RP3A0, 4x Cortex-A53 @ 1.0 GHz",
            cores=4, memory_mb=512, runtimes=["onnxruntime", "litert", "tflite-runtime"], latency_factor=10.0,
        ),
        DeviceProfile(
            id="rpi3b", name="Raspberry Pi 3 Model B+", arch="arm64", cpu="BCM2837B0, 4x Cortex-A53 @ 1.4 GHz",
            cores=4, memory_mb=1024, runtimes=["onnxruntime", "litert", "tflite-runtime"], latency_factor=8.0,
        ),
        DeviceProfile(
            id="rpi4b", name="Raspberry Pi 4 Model B", arch="arm64", cpu="BCM2711, 4x Cortex-A72 @ 1.8 GHz",
            cores=4, memory_mb=4096, runtimes=["onnxruntime", "litert", "tflite-runtime"], has_camera=True,
            latency_factor=4.0,
        ),
        DeviceProfile(
            id="rpi5", name="Raspberry Pi 5", arch="arm64", cpu="BCM2712, 4x Cortex-A76 @ 2.4 GHz",
            cores=4, memory_mb=8192, runtimes=["onnxruntime", "litert"], has_camera=True, latency_factor=2.0,
        ),
        DeviceProfile(
            id="jetson-orin-nano", name="NVIDIA Jetson Orin Nano", arch="arm64",
            cpu="6x Cortex-A78AE @ 1.5 GHz, Ampere GPU", cores=6, memory_mb=8192, runtimes=["onnxruntime", "litert"],
            accelerators=["cuda"], has_camera=True, latency_factor=1.8,
        ),
        DeviceProfile(
            id="x86-gateway", name="x86-64 industrial gateway", arch="x86_64", cpu="4-core x86-64",
            cores=4, memory_mb=8192, runtimes=["onnxruntime", "litert"], latency_factor=1.5,
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
