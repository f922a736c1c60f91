"""A fingerprint of a model's frozen base weights, stored with every adapter trained on them
(PPO/DPO checkpoints, reward models) so an adapter is never loaded onto another base."""

from __future__ import annotations

import hashlib

import torch


def base_model_fingerprint(model: torch.nn.Module, samples_per_tensor: int = 4096) -> str:
    """SHA-256 over the frozen (base) weights: each one's name, shape and an evenly strided sample
    of its raw bytes. Adapters trained on one base are meaningless on another, and a rebuilt or
    re-downloaded base can keep its path; the sample keeps this cheap for a 70B model (a few MB).
    Takes full tensors: under FSDP the trainer computes it before sharding the model."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                continue
            flat = parameter.detach().reshape(-1)
            step = max(1, flat.numel() // samples_per_tensor)
            sample = flat[::step][:samples_per_tensor].contiguous().cpu()
            digest.update(f"{name}:{tuple(parameter.shape)}:{parameter.dtype}".encode())
            digest.update(sample.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
