"""print_results: the results.json of compute_metrics as a table in the layout of Kaldi's RESULTS.

Usage: python -m sid.bin.print_results <results-json>
One block per trials list and back-end:
  # <trials-name> <backend> (<n> trials)
  EER: 3.128%
  minDCF(p-target=0.01): 0.3258  actDCF: 0.3391   (actDCF where a threshold was given)
  ...
  Cllr: 0.4122
"""

import json

from sid.cli import KaldiOptions, run_main
from sid.errors import SidError


def format_results(data: dict) -> str:
    lines = []
    for name in sorted(data):
        for backend in sorted(data[name]):
            entry = data[name][backend]
            lines.append(f"# {name} {backend} ({entry.get('num_trials', '?')} trials)")
            lines.append(f"EER: {entry['eer']:.4g}%")
            for key in (k for k in entry if k.startswith("mindcf_")):
                p = key.split("_", 1)[1]
                act = f"  actDCF: {entry[f'actdcf_{p}']:.4f}" if f"actdcf_{p}" in entry else ""
                lines.append(f"minDCF(p-target={p}): {entry[key]:.4f}{act}")
            if "cllr" in entry:
                lines.append(f"Cllr: {entry['cllr']:.4f}")
    return "\n".join(lines)


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    _, args = po.parse(num_args=1)
    try:
        with open(args[0], encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise SidError(f"{args[0]}: cannot read results ({err})") from None
    print(format_results(data))
    return 0


if __name__ == "__main__":
    run_main(main)
