"""Batch-wise augmentation on the device the batch lives on (no per-image Python loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from limitlab.errors import LimitlabError


def random_crop_flip(images: torch.Tensor, padding: int = 4,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding, then random horizontal flip, one draw per image (docs/method.md §5).

    ``images``: uint8 [B, C, H, W] on any device. Each image is zero-padded by ``padding`` on every
    side and an H x W window is cut at an offset (dy, dx), each uniform in 0..2*padding; with
    probability 1/2 the window is mirrored left-right. The offsets and flips are drawn on the CPU
    from ``generator`` (a CPU torch.Generator; the global RNG if None), so a seeded generator gives
    the same result on any device. Returns uint8 [B, C, H, W] on the same device.
    """
    if images.ndim != 4:
        raise LimitlabError(f"random_crop_flip needs a batch [B, C, H, W], got shape {list(images.shape)}")
    if padding < 0:
        raise LimitlabError(f"the crop padding must be 0 or more, got {padding}")
    b, c, h, w = images.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator)  # [2, B]: dy, dx
    flips = torch.randint(0, 2, (b,), generator=generator).bool()              # [B]
    device = images.device
    dy, dx, flips = offsets[0].to(device), offsets[1].to(device), flips.to(device)
    padded = F.pad(images, (padding, padding, padding, padding))               # [B, C, H+2p, W+2p]
    rows = dy[:, None] + torch.arange(h, device=device)                        # [B, H]
    columns = torch.arange(w, device=device).expand(b, w)
    columns = dx[:, None] + torch.where(flips[:, None], columns.flip(1), columns)  # [B, W], reversed if flipped
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], columns[:, None, None, :]]
