"""Training augmentation without black borders, and resizing to the backbone's resolution.

``random_resized_crop`` takes, per image, a random box inside the image (area a
fraction ``scale`` of the image, aspect ratio in ``ratio``) and resamples it to
``out_size`` x ``out_size`` with ``torchvision.ops.roi_align`` (bilinear, 2x2
samples per output pixel), all in one batched call on the images' device. The
box never leaves the image, so no padding (black border) is ever added -- unlike
the padded random crop used for CIFAR pretraining (``methods.augment_batch``).
Used by FT and LP-FT (issue 8 §2: PACS at 224 px, EfficientNet-Lite0's resolution).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["random_resized_crop", "resize_batch", "sample_boxes"]


def sample_boxes(n: int, h: int, w: int, generator: torch.Generator, scale=(0.6, 1.0),
                 ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """``n`` boxes (x1, y1, x2, y2) inside an ``h`` x ``w`` image (continuous pixel coordinates).

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio); width and height are
    clipped to the image, the offset is uniform over the positions that keep the box
    inside it.
    """
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"crop scale must satisfy 0 < lo <= hi <= 1, got {scale}")
    if not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"crop ratio must satisfy 0 < lo <= hi, got {ratio}")
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    area = (scale[0] + (scale[1] - scale[0]) * u[:, 0]) * h * w
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = torch.exp(logr)
    bw = torch.sqrt(area * r).clamp(1.0, w)
    bh = torch.sqrt(area / r).clamp(1.0, h)
    x1 = (w - bw) * u[:, 2]
    y1 = (h - bh) * u[:, 3]
    return torch.stack([x1, y1, x1 + bw, y1 + bh], 1).float()


def random_resized_crop(x: torch.Tensor, out_size: int, generator: torch.Generator, scale=(0.6, 1.0),
                        ratio=(3 / 4, 4 / 3), hflip: bool = True) -> torch.Tensor:
    """Random-resized crops of a uint8 or float batch (N, C, H, W) -> float (N, C, out, out), 0..255.

    ``generator`` (CPU) draws the boxes and flips, so the result is seeded.
    """
    from torchvision.ops import roi_align

    n, _, h, w = x.shape
    boxes = sample_boxes(n, h, w, generator, scale, ratio)
    flip = torch.rand(n, generator=generator) < 0.5 if hflip else None
    idx = torch.arange(n, dtype=torch.float32)[:, None]
    rois = torch.cat([idx, boxes], 1).to(x.device)
    y = roi_align(x.float(), rois, output_size=(out_size, out_size), spatial_scale=1.0, sampling_ratio=2,
                  aligned=True)
    if flip is not None:
        flip = flip.to(x.device)
        y = torch.where(flip[:, None, None, None], y.flip(3), y)
    return y


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Whole-image bilinear resize to ``size`` x ``size`` (float out; antialiased when shrinking)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x.float()
    shrink = size < min(x.shape[-2:])
    return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
