"""Sensor datasets: the synthetic generator and loaders for recordings on disk, all as one SensorDataset."""

from __future__ import annotations

from train.datasets.cmapss import CMAPSS_CHANNELS, HEALTH_STAGES, load_cmapss
from train.datasets.cwru import load_cwru
from train.datasets.dataset import ImageDataset, RulTargets, SensorDataset, check_dataset, window_recording
from train.datasets.image_folders import load_image_folder, load_mvtec
from train.datasets.synthetic import run_to_failure_dataset, synthetic_dataset
from train.datasets.tabular import load_table

__all__ = [
    "CMAPSS_CHANNELS",
    "HEALTH_STAGES",
    "ImageDataset",
    "RulTargets",
    "SensorDataset",
    "check_dataset",
    "load_cmapss",
    "load_cwru",
    "load_image_folder",
    "load_mvtec",
    "load_table",
    "run_to_failure_dataset",
    "synthetic_dataset",
    "window_recording",
]
