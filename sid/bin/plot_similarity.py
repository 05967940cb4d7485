"""plot_similarity: the N x M cosine-similarity matrix of N speakers' M utterances each.

Usage: python -m sid.bin.plot_similarity [options] <utt2spk> <embedding-rspecifier> <png-out>
Draws --num-speakers speakers (drawn with --seed among those with at least
--utts-per-speaker embeddings), --utts-per-speaker utterances each (the first in sorted
order), rows and columns grouped by speaker: a good model shows bright diagonal blocks.
e.g.: python -m sid.bin.plot_similarity --num-speakers=10 --utts-per-speaker=10 data/test/utt2spk scp:exp/xvector/embeddings/test/xvector.scp exp/similarity.png
"""

import numpy as np

from sid import kaldi_io
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("num-speakers", 10, "Speakers in the matrix (N)")
    po.register("utts-per-speaker", 10, "Utterances of each speaker (M)")
    po.register("seed", 0, "Random seed of the speaker draw")
    opts, args = po.parse(num_args=3)
    if opts.num_speakers < 1 or opts.utts_per_speaker < 1:
        raise SidError("--num-speakers and --utts-per-speaker must be positive")
    utt2spk = kaldi_io.read_token_map(args[0])
    keys, x = kaldi_io.read_vectors(args[1])
    by_spk: dict[str, list[int]] = {}
    for i, k in sorted(enumerate(keys), key=lambda t: t[1]):
        if k in utt2spk:
            by_spk.setdefault(utt2spk[k], []).append(i)
    have = sorted(s for s, idx in by_spk.items() if len(idx) >= opts.utts_per_speaker)
    if len(have) < 2:
        raise SidError(f"fewer than 2 speakers have {opts.utts_per_speaker} embeddings in {args[1]} (via {args[0]})")
    rng = np.random.default_rng(opts.seed)
    chosen = sorted(rng.choice(have, size=min(opts.num_speakers, len(have)), replace=False).tolist())
    rows = [i for s in chosen for i in by_spk[s][:opts.utts_per_speaker]]
    from sid.plots import plot_similarity

    plot_similarity(x[rows], [utt2spk[keys[i]] for i in rows], args[2])
    return 0


if __name__ == "__main__":
    run_main(main)
