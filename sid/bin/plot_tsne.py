"""plot_tsne: a t-SNE (or UMAP) map of utterance embeddings coloured by speaker.

Usage: python -m sid.bin.plot_tsne [options] <utt2spk> <embedding-rspecifier> <png-out>
Takes the utterances of --speakers (comma-separated), or else of
--num-speakers speakers drawn with --seed among those with embeddings;
--method=umap draws a UMAP (umap-learn, cosine metric) instead of t-SNE.
e.g.: python -m sid.bin.plot_tsne --num-speakers=10 data/test/utt2spk scp:exp/xvectors_test/xvector.scp exp/results/tsne.png
"""

import numpy as np

from sid import kaldi_io
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("speakers", "", "Comma-separated speakers to show (default: --num-speakers drawn at random)")
    po.register("num-speakers", 10, "How many speakers to draw when --speakers is not given")
    po.register("seed", 0, "Random seed for the speaker draw and t-SNE")
    po.register("perplexity", 30.0, "t-SNE perplexity (capped for small sets)")
    po.register("method", "tsne", "tsne or umap")
    opts, args = po.parse(num_args=3)
    utt2spk = kaldi_io.read_token_map(args[0])
    keys, x = kaldi_io.read_vectors(args[1])
    spk = [utt2spk.get(k) for k in keys]
    have = sorted({s for s in spk if s is not None})
    if opts.speakers:
        chosen = opts.speakers.split(",")
        missing = [s for s in chosen if s not in have]
        if missing:
            raise SidError(f"speaker '{missing[0]}' has no embeddings in {args[1]} (via {args[0]})")
    else:
        rng = np.random.default_rng(opts.seed)
        chosen = sorted(rng.choice(have, size=min(opts.num_speakers, len(have)), replace=False).tolist())
    sel = [i for i, s in enumerate(spk) if s in set(chosen)]
    if len(sel) < 5:
        raise SidError(f"only {len(sel)} embeddings for the chosen speakers; t-SNE needs at least 5")
    if opts.method == "tsne":
        from sid.plots import plot_tsne

        plot_tsne(x[sel], [spk[i] for i in sel], args[2], seed=opts.seed, perplexity=opts.perplexity)
    elif opts.method == "umap":
        from sid.plots import plot_umap

        plot_umap(x[sel], [spk[i] for i in sel], args[2], seed=opts.seed)
    else:
        raise SidError(f"--method must be tsne or umap, got '{opts.method}'")
    return 0


if __name__ == "__main__":
    run_main(main)
