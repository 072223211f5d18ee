"""Training: datasets, small models for edge devices, the training loop and the reference profile."""

from __future__ import annotations

from train.pdm import PdmConfig, train_pdm
from train.run import RunInfo, load_run
from train.vision import VisionConfig, train_vision

__all__ = ["PdmConfig", "RunInfo", "VisionConfig", "load_run", "train_pdm", "train_vision"]
