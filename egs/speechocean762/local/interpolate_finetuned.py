#!/usr/bin/env python3
"""Usage: local/interpolate_finetuned.py [--num-avg N] <finetuned-exp> <alpha> <new-exp>

Writes <new-exp> (config.yaml, spk2id, final.pt) as the fine-tuning of <finetuned-exp> would have
written it with training.interpolate_init: <alpha> (WiSE-FT), whatever its own: final.pt = (1 - alpha) x the weights
--init-model gave (<finetuned-exp>/models/init.pt) + alpha x the mean of its last training.num_avg
epochs (--num-avg: of its last N instead, as training.num_avg: N would have), by the trainer's own
functions. The training is the same whatever alpha, so choosing alpha
on a development split needs one fine-tuning, then extraction and scoring per value:

    local/interpolate_finetuned.py exp/dev/ft_resemblyzer 0.5 exp/dev_wise0.5/ft_resemblyzer
    ./run.sh --pretrained resemblyzer --finetune true --dev-speakers 25 --data data/dev \\
      --exp exp/dev_wise0.5 --stage 4
"""

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

from sid.cli import run_main
from sid.config import load_config
from sid.errors import SidError
from sid.train import checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-avg", type=int, default=0, help="epochs averaged (default: the exp's training.num_avg)")
    ap.add_argument("src", type=Path)
    ap.add_argument("alpha")
    ap.add_argument("new", type=Path)
    args = ap.parse_args()
    src, new = args.src, args.new
    try:
        alpha = float(args.alpha)
    except ValueError:
        raise SidError(f"alpha must be a number in [0, 1], got '{args.alpha}'") from None
    if not 0 <= alpha <= 1:
        raise SidError(f"alpha must be in [0, 1], got {alpha}")
    for name in ("config.yaml", "spk2id", "final.pt", "models/init.pt"):
        if not (src / name).exists():
            raise SidError(f"{src / name} is missing: give a finished fine-tuning exp (steps/train_xvector.sh "
                           "--init-model, which keeps models/init.pt)")
    cfg = load_config(src / "config.yaml", recorded=True)
    epochs, num_avg = cfg.training.epochs, args.num_avg or cfg.training.num_avg
    if not 1 <= num_avg <= epochs:
        raise SidError(f"--num-avg must be in 1..{epochs} (the epochs of {src}), got {num_avg}")
    chosen = list(range(max(1, epochs - num_avg + 1), epochs + 1))
    final = checkpoint.interpolate(checkpoint.load(src / "models" / "init.pt")["init"],
                                   checkpoint.average_epochs(src / "models", chosen), alpha,
                                   str(src / "models" / "init.pt"))
    new.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, interpolate_init=alpha, num_avg=num_avg))
    cfg.dump(new / "config.yaml", f"{src / 'config.yaml'} with training.interpolate_init {alpha:g}, num_avg "
                                  f"{num_avg} (local/interpolate_finetuned.py)")
    shutil.copyfile(src / "spk2id", new / "spk2id")
    checkpoint.save_atomic(final, new / "final.pt")
    print(f"{sys.argv[0]}: wrote {new / 'final.pt'}: {1 - alpha:g} x {src / 'models' / 'init.pt'} + {alpha:g} x "
          f"the mean of epoch(s) {', '.join(map(str, chosen))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
