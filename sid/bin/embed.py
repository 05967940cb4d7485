"""Embed audio files with an exp dir, without a data dir.

Usage:  python -m sid.bin.embed [options] --exp <exp> <wav-or-rspecifier> <embedding-wspecifier>
 e.g.:  python -m sid.bin.embed --exp exp/xvector a.wav ark,t:-
        python -m sid.bin.embed --exp exp/xvector --use-gpu=optional scp:wav.scp ark,scp:emb.ark,emb.scp
An audio file is embedded under its name without extension; scp:wav.scp (or ark: of wav
data) gives the utterance ids. Each utterance gets the features, VAD, CMN and chunking the
recipe gives it (sid.embedder), so its embedding equals steps/extract_embeddings.sh's;
utterances are batched. Another sample rate than the model's is an error naming the
utterance unless --resample=true. Nothing is written unless every utterance succeeds."""

import logging
import re
from pathlib import Path

from sid.cli import KaldiOptions, progress, run_main

log = logging.getLogger("embed")


def register_embedder_options(po: KaldiOptions) -> None:
    from sid.embedder import DEFAULT_VAD_CONFIG

    po.register("exp", "", "Exp dir of the model (config.yaml, final.pt); required")
    po.register("use-gpu", "optional", "yes|no|optional: compute on a CUDA device")
    po.register("resample", False, "Resample audio at another rate to the model's (else an error)")
    po.register("vad-config", str(DEFAULT_VAD_CONFIG), "Energy VAD options, as the recipe's compute_vad_decision.sh")
    po.register("compress", True, "Round the features through Kaldi's compression, as steps/make_features.sh "
                "stores them (its --compress)")


def embedder_from_opts(opts, **kwargs):
    from sid.embedder import Embedder
    from sid.errors import SidError

    if not opts.exp:
        raise SidError("--exp <exp-dir> is required")
    return Embedder.from_exp(opts.exp, device=opts.use_gpu, vad_config=opts.vad_config, compress=opts.compress,
                             resample=opts.resample, **kwargs)


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    register_embedder_options(po)
    po.register("batch-frames", 50000, "Frames per batch of chunks")
    opts, (source, wspec) = po.parse(num_args=2)

    from sid import kaldi_io
    from sid.errors import SidError
    from sid.features.extract import read_wavs

    embedder = embedder_from_opts(opts)
    embedder.extractor.batch_frames = opts.batch_frames
    if re.match(r"(scp|ark)(,[a-z]+)*:", source):
        entries = read_wavs(source)
    else:
        if not Path(source).exists():
            raise SidError(f"{source}: no such file (give an audio file, or scp:wav.scp)")
        from sid.data.audio import read_audio

        entries = iter([(Path(source).stem, source,
                         lambda rate, res: read_audio(source, utt=Path(source).stem, sample_rate=rate, resample=res))])

    def prepared():
        for utt, where, read in progress(entries, desc="embed", unit="utt", mininterval=5.0):
            samples, sr = embedder.decode(read)
            yield utt, embedder.features(samples, sr, utt, where=f"utterance '{utt}' ({where})", int16_range=True)

    embeddings = dict(embedder.extractor.embed(prepared()))
    if not embeddings:
        raise SidError(f"{source}: no utterances")
    with kaldi_io.TableWriter(wspec) as w:
        for k in sorted(embeddings, key=str.encode):
            w.write(k, embeddings[k])
    log.info("Embedded %d utterances (%d-dim) on %s", len(embeddings), next(iter(embeddings.values())).shape[0],
             embedder.device)
    return 0


if __name__ == "__main__":
    run_main(main)
