"""Model size and compute: parameters, and multiply-adds of convolution, linear and
recurrent (LSTM/GRU gate) layers (the bulk of the work; element-wise ops, pooling and
attention products are not counted), split into a per-second rate and a per-chunk
constant."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, frames: int, feat_dim: int) -> int:
    """Multiply-adds of Conv1d/Conv2d/Linear/LSTM/GRU layers for one input of ``frames`` frames."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            k = module.in_channels // module.groups
            for s in module.kernel_size:
                k *= s
            total += output.numel() * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, (nn.LSTM, nn.GRU)):
            steps = inputs[0].shape[1] if module.batch_first else inputs[0].shape[0]
            gates = 4 if isinstance(module, nn.LSTM) else 3
            h, out = module.hidden_size, getattr(module, "proj_size", 0) or module.hidden_size
            for layer in range(module.num_layers):
                cin = module.input_size if layer == 0 else out
                total += steps * inputs[0].shape[0] * (gates * h * (cin + out) + (h * out if out != h else 0))

    kinds = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.LSTM, nn.GRU)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, frames, feat_dim))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def macs_per_second(model: nn.Module, feat_dim: int, frames_per_second: int = 100) -> tuple[float, float]:
    """(multiply-adds per second of input, per-chunk constant), from two input lengths
    (cost is linear in length: frame layers scale, segment layers do not)."""
    a, b = 5 * frames_per_second, 10 * frames_per_second
    ma, mb = count_macs(model, a, feat_dim), count_macs(model, b, feat_dim)
    per_frame = (mb - ma) / (b - a)
    return per_frame * frames_per_second, mb - per_frame * b
