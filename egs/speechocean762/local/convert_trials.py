#!/usr/bin/env python3
"""Usage: local/convert_trials.py <corpus-dir> <data-dir> <voxceleb-list> <kaldi-trials>

Turns a VoxCeleb-format list (`1|0 path1 path2`, paths relative to the corpus
root) into Kaldi trials (`utt1 utt2 target|nontarget`), mapping each path to
its utterance through <data-dir>/wav.scp. A path with no utterance in the data
dir is an error naming the list's line.
"""

import os
import sys

from sid.data.table import atomic_path, read_dict
from sid.errors import SidError


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 1
    corpus, data, src, dest = sys.argv[1:]
    # Paths are compared as written, never resolved: a corpus assembled from symbolic links
    # (speaker folders linked from elsewhere) names its files through the links. The root
    # itself may be given through a link or resolved (local/prepare_data.py resolves it).
    roots = {os.path.abspath(corpus), os.path.realpath(corpus)}
    path2utt = {}
    for utt, path in read_dict(os.path.join(data, "wav.scp")).items():
        path = os.path.abspath(path)
        for root in roots:
            rel = os.path.relpath(path, root)
            if not rel.startswith(".." + os.sep):
                path2utt[rel] = utt
    labels = {"1": "target", "0": "nontarget"}
    bad = []
    with atomic_path(dest) as tmp, open(src) as f, open(tmp, "w") as out:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 3 or fields[0] not in labels:
                raise SidError(f"{src}:{lineno}: expected '1|0 path1 path2', got '{line.strip()}'")
            utts = [path2utt.get(os.path.normpath(p)) for p in fields[1:]]
            for p, u in zip(fields[1:], utts):
                if u is None:
                    bad.append(f"{src}:{lineno}: {p}")
            if None not in utts:
                out.write(f"{utts[0]} {utts[1]} {labels[fields[0]]}\n")
        if bad:
            raise SidError(f"{len(bad)} trial paths are not in {data}/wav.scp:\n  " + "\n  ".join(bad[:10]))
    return 0


if __name__ == "__main__":
    from sid.cli import run_main
    run_main(main)
