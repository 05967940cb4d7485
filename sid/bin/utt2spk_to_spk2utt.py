"""utt2spk_to_spk2utt: spk2utt from utt2spk (speakers in order of first appearance), like Kaldi's .pl."""

import sys

from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

USAGE = """Usage: utt2spk_to_spk2utt [<utt2spk>...] > spk2utt
Reads stdin when no file is given.
 e.g.: utt2spk_to_spk2utt data/train/utt2spk > data/train/spk2utt"""


def main() -> int:
    po = KaldiOptions(USAGE)
    _, args = po.parse()
    groups: dict[str, list[str]] = {}
    for path in args or ["-"]:
        try:
            f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as err:
            raise SidError(f"{path}: {err.strerror}") from None
        with f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if len(fields) != 2:
                    raise SidError(f"{path}:{lineno}: expected '<utterance> <speaker>', got '{line.rstrip()}'")
                groups.setdefault(fields[1], []).append(fields[0])
    sys.stdout.writelines(f"{spk} {' '.join(utts)}\n" for spk, utts in groups.items())
    return 0


if __name__ == "__main__":
    run_main(main)
