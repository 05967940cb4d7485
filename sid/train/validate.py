"""Validation during training: loss and accuracy on held-out utterances (fixed
chunks, the same every time) and, given a trial list, the EER of cosine scores of
whole-utterance embeddings."""

from __future__ import annotations

import numpy as np
import torch

from sid.data.table import iter_lines
from sid.errors import DataDirError


def read_trials(path) -> list[tuple[str, str, bool]]:
    """Kaldi trials: ``utt1 utt2 target|nontarget``."""
    out = []
    for lineno, key, rest in iter_lines(path):
        parts = rest.split()
        if len(parts) != 2 or parts[1] not in ("target", "nontarget"):
            raise DataDirError(f"{path}:{lineno}: expected 'utt1 utt2 target|nontarget'")
        out.append((key, parts[0], parts[1] == "target"))
    return out


def equal_error_rate(scores: np.ndarray, is_target: np.ndarray) -> float:
    """EER in percent: the error rate where miss and false-alarm rates cross
    (sorted-score sweep, as Kaldi's compute-eer picks the threshold)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_target = np.asarray(is_target, dtype=bool)
    n_tgt, n_non = int(is_target.sum()), int((~is_target).sum())
    if n_tgt == 0 or n_non == 0:
        raise ValueError("EER needs both target and non-target trials")
    order = np.argsort(scores, kind="mergesort")
    tgt_sorted = is_target[order]
    # Threshold just above position i: misses are targets at or below, false alarms non-targets above.
    miss = np.cumsum(tgt_sorted) / n_tgt
    fa = 1.0 - np.cumsum(~tgt_sorted) / n_non
    i = int(np.argmin(np.abs(miss - fa)))
    return 100.0 * float((miss[i] + fa[i]) / 2)


@torch.no_grad()
def chunk_loss_acc(model, head, batches, device, autocast) -> tuple[float, float]:
    """Mean loss and accuracy over (feats, labels) batches, in eval mode."""
    tot_loss, tot_correct, tot = 0.0, 0, 0
    for feats, labels in batches:
        feats, labels = feats.to(device), labels.to(device)
        with autocast():
            loss, logits = head(model(feats), labels)
        tot_loss += float(loss) * len(labels)
        tot_correct += int((logits.argmax(-1) == labels).sum())
        tot += len(labels)
    return tot_loss / max(tot, 1), tot_correct / max(tot, 1)
