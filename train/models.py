"""Small models for small devices, built only from operators that ONNX and TFLite take well."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Final

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "ARCHITECTURES",
    "DeviceOutputs",
    "MobileNetLike",
    "SensorCNN",
    "build_model",
    "fold_batch_norms",
    "split_outputs",
]


Outputs = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class SensorCNN(nn.Module):
    """A 1-D CNN for multichannel sensor windows (N, C, L) → class logits; about 15k parameters.

    With ``rul_head`` it also outputs the remaining useful life as a fraction of its cap, (N, 1) in [0, 1]:
    a sigmoid keeps the estimate inside the range the targets were capped to.
    """

    def __init__(self, channels: int, classes: int, width: int = 24, rul_head: bool = False) -> None:
        super().__init__()

        def block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv1d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
            )

        self.features = nn.Sequential(
            block(channels, width, 9),
            block(width, width, 7),
            block(width, 2 * width, 5),
            block(2 * width, 2 * width, 5),
        )
        self.head = nn.Linear(2 * width, classes)
        self.rul_head = nn.Linear(2 * width, 1) if rul_head else None

    def forward(self, x: torch.Tensor) -> Outputs:
        # a mean over time rather than AdaptiveAvgPool1d: one ReduceMean in ONNX and MEAN in TFLite
        pooled = self.features(x).mean(dim=2)
        logits = self.head(pooled)
        if self.rul_head is None:
            return logits  # type: ignore[no-any-return]
        return logits, torch.sigmoid(self.rul_head(pooled))


def split_outputs(outputs: Outputs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class logits and, for a model with an RUL head, the RUL fraction."""
    return (outputs[0], outputs[1]) if isinstance(outputs, tuple) else (outputs, None)


class DeviceOutputs(nn.Module):
    """Wraps a trained model so the exported one outputs what the manifest promises: class probabilities,
    and the remaining useful life in its unit (the fraction times ``rul_cap``) when there is an RUL head."""

    def __init__(self, model: nn.Module, rul_cap: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.rul_cap = rul_cap

    def forward(self, x: torch.Tensor) -> Outputs:
        logits, rul = split_outputs(self.model(x))
        probs = torch.softmax(logits, dim=1)
        if rul is None or self.rul_cap is None:
            return probs
        return probs, rul * self.rul_cap


class MobileNetLike(nn.Module):
    """Depthwise-separable CNN for RGB images (N, 3, H, W) → class logits, with a width multiplier."""

    _BLOCKS: Final = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2))

    def __init__(self, classes: int, width: float = 0.5) -> None:
        super().__init__()

        def scaled(channels: int) -> int:
            return max(8, int(channels * width + 4) // 8 * 8)

        def separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
                nn.BatchNorm2d(c_in),
                nn.ReLU6(),
                nn.Conv2d(c_in, c_out, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU6(),
            )

        layers: list[nn.Module] = [
            nn.Conv2d(3, scaled(32), 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(scaled(32)),
            nn.ReLU6(),
        ]
        channels = scaled(32)
        for out, stride in self._BLOCKS:
            layers.append(separable(channels, scaled(out), stride))
            channels = scaled(out)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # type: ignore[no-any-return]


# how each architecture a run names is built, from (input channels, classes, width, RUL head)
ARCHITECTURES: Final[dict[str, Callable[[int, int, float, bool], nn.Module]]] = {
    "sensor-cnn": lambda channels, classes, width, rul: SensorCNN(channels, classes, int(width), rul),
    "mobilenet": lambda _channels, classes, width, _rul: MobileNetLike(classes, width),
}


def build_model(architecture: str, channels: int, classes: int, width: float, rul_head: bool = False) -> nn.Module:
    """An untrained model of a known architecture; raises KeyError for an unknown one."""
    return ARCHITECTURES[architecture](channels, classes, width, rul_head)


_CONVS: Final = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS: Final = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every BatchNorm that directly follows a convolution inside an
    ``nn.Sequential`` is folded into that convolution's weights and bias; ``model`` itself is untouched.

    The same function with fewer operators, for export: litert-torch keeps a BatchNorm1d as a MUL and an
    ADD, and the transposes around each Conv1d with it (35 operators in the sensor CNN, 15 folded).
    """
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, _CONVS) and isinstance(norm, _NORMS):
                module[index] = fuse_conv_bn_eval(conv, norm)
                module[index + 1] = nn.Identity()
    return folded
