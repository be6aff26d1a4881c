"""Shared helpers of the empirical tests (torch optional; data optional)."""

from __future__ import annotations

import pytest

from twolayer.empirical.data import resolve_data_dir


def bundle_or_skip(name: str):
    """Path of a shared data bundle, or skip the test cleanly when it is absent."""
    path = resolve_data_dir() / name
    if not path.is_file():
        pytest.skip(f"data bundle {name} not found at {path} (set TWOLAYER_DATA)")
    return path


def small_threads():
    import torch
    torch.set_num_threads(2)
