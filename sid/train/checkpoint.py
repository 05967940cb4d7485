"""Checkpoints: written atomically (temporary name, then rename), loaded with
``weights_only=True``, and averaged into the final model.

``models/last.pt`` always holds the newest full training state (model, head,
optimiser, scheduler, scaler, epoch, position in the epoch, step, RNG states);
``models/epoch_<N>.pt`` holds the weights at the end of epoch N, for averaging.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import torch

from sid.data.table import atomic_path
from sid.errors import SidError


def save_atomic(obj, path: str | Path) -> None:
    # Serialised first, so a full disk is reported with the size the checkpoint needs.
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getbuffer()
    with atomic_path(path, size=len(data)) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def load(path: str | Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise SidError(f"checkpoint {path} not found") from None
    except Exception as err:
        raise SidError(f"cannot load checkpoint {path}: {err}") from None


def init_source(path: str | Path) -> tuple[Path, Path]:
    """``(checkpoint, exp dir)`` of ``--init-model``: an exp dir (its ``final.pt``) or a checkpoint
    in one (``<exp>/final.pt``, ``<exp>/models/epoch_<N>.pt``); the exp dir holds ``config.yaml``."""
    path = Path(path)
    ckpt = path / "final.pt" if path.is_dir() else path
    if not ckpt.exists():
        raise SidError(f"{ckpt} not found: --init-model takes an exp dir with final.pt and config.yaml "
                       "(trained here or written by sid.bin.import_model), or a checkpoint in one")
    for exp in (ckpt.parent, ckpt.parent.parent):
        if (exp / "config.yaml").exists():
            return ckpt, exp
    raise SidError(f"no config.yaml beside {ckpt} (or one folder up): the model it holds is not described")


def load_weights(module: torch.nn.Module, state: dict, where: str, what: str = "model") -> None:
    """``module.load_state_dict(state)``, with an error naming the first missing, unexpected or
    mis-shaped key."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing:
        raise SidError(f"{where}: the {what} has no weight '{missing[0]}' ({len(missing)} missing): "
                       "the checkpoint is of another architecture, or corrupted")
    if unexpected:
        raise SidError(f"{where}: unexpected {what} weight '{unexpected[0]}' ({len(unexpected)} in all): "
                       "the checkpoint is of another architecture")
    if shapes:
        k = shapes[0]
        raise SidError(f"{where}: {what} weight '{k}' has shape {list(state[k].shape)}, the model needs "
                       f"{list(own[k].shape)}: the checkpoint is of another architecture")
    module.load_state_dict(state)


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) generator states in weights-only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_checkpoints(model_dir: str | Path) -> dict[int, Path]:
    out = {}
    for p in Path(model_dir).glob("epoch_*.pt"):
        try:
            out[int(p.stem.split("_", 1)[1])] = p
        except ValueError:
            continue
    return dict(sorted(out.items()))


def average_state_dicts(states: list[dict]) -> dict:
    """Element-wise mean of float tensors; integer buffers (BN's batch counters) from the last."""
    out = {}
    for key, value in states[-1].items():
        if torch.is_floating_point(value):
            out[key] = sum(s[key].double() for s in states).div(len(states)).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def average_epochs(model_dir: str | Path, epochs: list[int]) -> dict:
    """Average the ``model`` and ``head`` weights of the given epoch checkpoints."""
    ckpts = epoch_checkpoints(model_dir)
    missing = [e for e in epochs if e not in ckpts]
    if missing:
        raise SidError(f"{model_dir}: no checkpoint for epoch(s) {missing} to average")
    loaded = [load(ckpts[e]) for e in epochs]
    return {
        "model": average_state_dicts([c["model"] for c in loaded]),
        "head": average_state_dicts([c["head"] for c in loaded]),
        "averaged_epochs": list(epochs),
    }


def interpolate(init: dict, final: dict, alpha: float, where: str) -> dict:
    """WiSE-FT: ``(1 - alpha) * init + alpha * final`` for each float weight ``init`` holds (named
    ``model.<key>`` / ``head.<key>``, as in ``models/init.pt``); the others (a new head, integer
    buffers) as in ``final``, which is a checkpoint with ``model`` and ``head`` parts. The result
    records ``interpolate_init: alpha``."""
    out = {**final, "model": dict(final["model"]), "head": dict(final["head"]), "interpolate_init": alpha}
    for name, start in init.items():
        part, _, key = name.partition(".")
        value = out.get(part, {}).get(key) if part in ("model", "head") else None
        if value is None or tuple(value.shape) != tuple(start.shape):
            now = "absent" if value is None else f"of shape {list(value.shape)}"
            raise SidError(f"{where}: weight '{name}' {list(start.shape)} is {now} in the model trained: "
                           "the initial weights are of another architecture")
        if torch.is_floating_point(value):
            out[part][key] = (start.double() * (1 - alpha) + value.double() * alpha).to(value.dtype)
    return out
