#!/usr/bin/env python3
"""Usage: local/interpolate_finetuned.py <finetuned-exp> <alpha> <new-exp>

Writes <new-exp> (config.yaml, spk2id, final.pt) as the fine-tuning of <finetuned-exp> would have
written it with training.interpolate_init: <alpha> (WiSE-FT), whatever its own: final.pt = (1 - alpha) x the weights
--init-model gave (<finetuned-exp>/models/init.pt) + alpha x the mean of its last training.num_avg
epochs, by the trainer's own functions. The training is the same whatever alpha, so choosing alpha
on a development split needs one fine-tuning, then extraction and scoring per value:

    local/interpolate_finetuned.py exp/dev/ft_resemblyzer 0.5 exp/dev_wise0.5/ft_resemblyzer
    ./run.sh --pretrained resemblyzer --finetune true --dev-speakers 25 --data data/dev \\
      --exp exp/dev_wise0.5 --stage 4
"""

import dataclasses
import shutil
import sys
from pathlib import Path

from sid.cli import run_main
from sid.config import load_config
from sid.errors import SidError
from sid.train import checkpoint


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 1
    src, new = Path(sys.argv[1]), Path(sys.argv[3])
    try:
        alpha = float(sys.argv[2])
    except ValueError:
        raise SidError(f"alpha must be a number in [0, 1], got '{sys.argv[2]}'") from None
    if not 0 <= alpha <= 1:
        raise SidError(f"alpha must be in [0, 1], got {alpha}")
    for name in ("config.yaml", "spk2id", "final.pt", "models/init.pt"):
        if not (src / name).exists():
            raise SidError(f"{src / name} is missing: give a finished fine-tuning exp (steps/train_xvector.sh "
                           "--init-model, which keeps models/init.pt)")
    cfg = load_config(src / "config.yaml", recorded=True)
    epochs, num_avg = cfg.training.epochs, cfg.training.num_avg
    chosen = list(range(max(1, epochs - num_avg + 1), epochs + 1))
    final = checkpoint.interpolate(checkpoint.load(src / "models" / "init.pt")["init"],
                                   checkpoint.average_epochs(src / "models", chosen), alpha,
                                   str(src / "models" / "init.pt"))
    new.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, interpolate_init=alpha))
    cfg.dump(new / "config.yaml", f"{src / 'config.yaml'} with training.interpolate_init {alpha:g} "
                                  "(local/interpolate_finetuned.py)")
    shutil.copyfile(src / "spk2id", new / "spk2id")
    checkpoint.save_atomic(final, new / "final.pt")
    print(f"{sys.argv[0]}: wrote {new / 'final.pt'}: {1 - alpha:g} x {src / 'models' / 'init.pt'} + {alpha:g} x "
          f"the mean of epoch(s) {', '.join(map(str, chosen))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
