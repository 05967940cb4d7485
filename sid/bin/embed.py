"""Usage: python -m sid.bin.embed [options] --exp <exp> <wav-or-rspecifier> <embedding-wspecifier>

Embed audio files with an exp dir, without a data dir.
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

from sid.cli import doc_argparser, parse_bool, progress, run_main, setup_logging

log = logging.getLogger("embed")


def embedder_parser(doc: str):
    """The options every tool that embeds audio takes (``--exp X`` or ``--exp=X``)."""
    from sid.embedder import DEFAULT_VAD_CONFIG

    flag = {"type": parse_bool, "nargs": "?", "const": True, "metavar": "true|false"}
    parser = doc_argparser(doc)
    parser.add_argument("--exp", required=True, help="exp dir of the model (config.yaml, final.pt)")
    parser.add_argument("--use-gpu", default="optional", choices=("yes", "no", "optional"),
                        help="compute on a CUDA device (default: optional, when present)")
    parser.add_argument("--resample", default=False, **flag,
                        help="resample audio at another rate to the model's (default: false, an error)")
    parser.add_argument("--vad-config", default=None,
                        help="energy VAD options, for an exp that does not record its VAD (features.vad in its "
                             f"config.yaml; default then: {DEFAULT_VAD_CONFIG}); an exp that does uses its own")
    parser.add_argument("--compress", default=None, **flag,
                        help="round the features through Kaldi's compression (default: as the exp records its "
                             "features were stored, features.compress)")
    return parser


def embedder_from_opts(opts, **kwargs):
    from sid.embedder import Embedder

    return Embedder.from_exp(opts.exp, device=opts.use_gpu, vad_config=opts.vad_config, compress=opts.compress,
                             resample=opts.resample, **kwargs)


def main() -> int:
    parser = embedder_parser(__doc__)
    parser.add_argument("--batch-frames", type=int, default=0,
                        help="frames per batch of chunks (default 0: the device's, sid.extract.DEFAULT_BATCH_FRAMES)")
    parser.add_argument("source", help="an audio file, or scp:wav.scp")
    parser.add_argument("wspec", help="where the embeddings go, e.g. ark,t:- or ark,scp:emb.ark,emb.scp")
    opts = parser.parse_args()
    setup_logging()
    source, wspec = opts.source, opts.wspec

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
