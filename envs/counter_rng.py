"""Counter-based random numbers in torch: every draw is a hash of ``(stream key, counter, lane)``.

A stream holds no state but its counter, so streams are independent by construction: one agent's (or one
environment's) draws never depend on how many other streams are drawn beside it, on which device, or in which
order. Drawing needs no generator object and no host synchronisation, so it runs inside CUDA graphs.

The hash is ``lowbias32`` (C. Wellons' public-domain 32-bit integer mixer) applied in a chain; int64 tensors hold
the 32-bit words so that every product wraps in the low 32 bits on any device.
"""

from __future__ import annotations

import torch

MASK = 0xFFFFFFFF
GOLDEN = 0x9E3779B9  # odd offsets keep zero, the hash's fixed point, out of every chain


def mix(x: torch.Tensor) -> torch.Tensor:
    """A bijection of 32-bit words (held in int64) with good avalanche."""
    x = x & MASK
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK
    return x ^ (x >> 16)


def stream_keys(seed: int, num_streams: int, purpose: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """``num_streams`` keys derived from ``seed``; ``purpose`` separates unrelated uses of one seed."""
    seed_word = mix(mix(torch.tensor((seed & MASK) ^ 0x5851F42D, dtype=torch.int64)) + (seed >> 32) + purpose * GOLDEN)
    return mix(seed_word.to(device) + GOLDEN * torch.arange(1, num_streams + 1, dtype=torch.int64, device=device))


def random_words(keys: torch.Tensor, counter: torch.Tensor | int, lane: int = 0) -> torch.Tensor:
    """32-bit random words (int64 in ``[0, 2**32)``), one per key, for draw ``lane`` at step ``counter``."""
    return mix(mix(mix(keys) + counter + GOLDEN) + lane * 0x632BE5AB + 0x2545F491)


def uniform(keys: torch.Tensor, counter: torch.Tensor | int, lane: int = 0) -> torch.Tensor:
    """float32 uniforms in ``[0, 1)`` with 24 random bits, one per key (see :func:`random_words`)."""
    return (random_words(keys, counter, lane) >> 8).to(torch.float32) * (1.0 / (1 << 24))


def integers(keys: torch.Tensor, counter: torch.Tensor | int, lane: int, high: torch.Tensor | int) -> torch.Tensor:
    """int64 draws in ``[0, high)`` (``high`` below ``2**16``, so the modulo bias is under ``2**-16``)."""
    return random_words(keys, counter, lane) % high
