"""Small models for small devices, built only from operators that ONNX and TFLite take well."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SensorCNN", "WithSoftmax"]


class SensorCNN(nn.Module):
    """A 1-D CNN for multichannel sensor windows (N, C, L) → class logits; about 15k parameters."""

    def __init__(self, channels: int, classes: int, width: int = 24) -> None:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a mean over time rather than AdaptiveAvgPool1d: one ReduceMean in ONNX and MEAN in TFLite
        return self.head(self.features(x).mean(dim=2))  # type: ignore[no-any-return]


class WithSoftmax(nn.Module):
    """Wraps a classifier so the exported model outputs probabilities, as the manifest contract says."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)
