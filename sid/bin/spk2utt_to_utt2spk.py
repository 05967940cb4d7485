"""spk2utt_to_utt2spk: utt2spk from spk2utt, in spk2utt order, like Kaldi's .pl."""

import sys

from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

USAGE = """Usage: spk2utt_to_utt2spk [<spk2utt>...] > utt2spk
Reads stdin when no file is given.
 e.g.: spk2utt_to_utt2spk data/train/spk2utt > data/train/utt2spk"""


def main() -> int:
    po = KaldiOptions(USAGE)
    _, args = po.parse()
    out = sys.stdout
    for path in args or ["-"]:
        try:
            f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as err:
            raise SidError(f"{path}: {err.strerror}") from None
        with f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if len(fields) < 2:
                    raise SidError(f"{path}:{lineno}: expected '<speaker> <utterance>...', got '{line.rstrip()}'")
                spk = fields[0]
                out.writelines(f"{utt} {spk}\n" for utt in fields[1:])
    return 0


if __name__ == "__main__":
    run_main(main)
