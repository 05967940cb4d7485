"""Validation during training: loss and accuracy on held-out utterances (fixed
chunks, the same every time) and, given a trial list, the EER of cosine scores of
whole-utterance embeddings."""

from __future__ import annotations

import numpy as np
import torch

from sid.backend import scoring


def read_trials(path) -> list[tuple[str, str, bool]]:
    """Kaldi trials ``utt1 utt2 target|nontarget``, checked as the scoring tools check them."""
    trials = scoring.read_trials(str(path), need_labels=True)
    return list(zip(trials.keys1.tolist(), trials.keys2.tolist(), trials.labels.tolist()))


def equal_error_rate(scores: np.ndarray, is_target: np.ndarray) -> float:
    """EER in percent, as Kaldi's compute-eer (sid.metrics)."""
    from sid.metrics import compute_eer

    scores, is_target = np.asarray(scores), np.asarray(is_target, dtype=bool)
    return 100.0 * compute_eer(scores[is_target], scores[~is_target])[0]


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
