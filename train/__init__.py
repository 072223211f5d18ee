"""Training: datasets, small models for edge devices, the training loop and the reference profile."""

from __future__ import annotations

from train.pdm import PdmConfig, train_pdm
from train.run import RunInfo, load_run

__all__ = ["PdmConfig", "RunInfo", "load_run", "train_pdm"]
