"""Extract utterance embeddings with a trained model (the job of Kaldi's nnet3-xvector-compute
inside extract_xvectors.sh, CMN and voiced-frame selection included)."""

import logging
import os
from pathlib import Path

from sid.cli import KaldiOptions, progress, run_main

USAGE = """Compute speaker embeddings (x-vectors) of utterances from raw features and VAD, with a model
dir written by steps/train_xvector.sh. Features get the sliding CMN the training features had
(features.cmvn_opts in <model-dir>/config.yaml) and voiced-frame selection; utterances longer than
--max-chunk-frames are cut into chunks whose embeddings are averaged, weighted by length
(Kaldi's semantics; chunks under --min-chunk-frames are edge-padded).
A model trained from audio (features.source: audio in its config) reads a data dir's audio instead
(wav.scp, segments): the fbank of features.config less each utterance's mean, no VAD, as it was trained.
Usage:  extract_embeddings [options] <model-dir> <feats-rspecifier> <vad-rspecifier> <xvector-wspecifier>
        extract_embeddings [options] <model-dir> <data-dir> <xvector-wspecifier>   (trained from audio)
 e.g.:  extract_embeddings exp/xvector scp:data/test/feats.scp scp:data/test/vad.scp \\
          ark,scp:exp/xvector/xvectors_test/xvector.1.ark,exp/xvector/xvectors_test/xvector.1.scp
        extract_embeddings exp/resnet34 data/voxceleb1/split4/1 ark,scp:exp/resnet34/emb/xvector.1.ark,exp/resnet34/emb/xvector.1.scp"""

log = logging.getLogger("extract_embeddings")


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("use-gpu", "no", "yes|no|optional: compute on a CUDA device")
    po.register("max-chunk-frames", 10000, "Longest chunk the model sees; longer utterances are cut and averaged")
    po.register("min-chunk-frames", 25, "Shorter chunks are padded to this length by repeating edge frames")
    po.register("batch-frames", 0, "Most frames per batch, padding included: bounds memory "
                "(0: 50000 on a GPU, 4000 on CPU); utterances of different lengths are batched")
    po.register("num-threads", 1, "CPU threads for the model (per job)")
    po.register("model-file", "final.pt", "Weights file inside <model-dir>")
    po.register("chunking", "", "kaldi (length-weighted mean of --max-chunk-frames chunks) or windows (mean of "
                "unit-length 1.6 s windows at 50% overlap, re-normalised: d-vectors); default: the config's "
                "extract.chunking, else kaldi")
    po.register("skip-done", False, "For an ark,scp output: do nothing if its scp exists and <scp>.made_by "
                "records the same model, config, inputs and chunking options (resuming a split job); "
                "otherwise say what changed and extract again")
    opts, args = po.parse(num_args=(3, 4))

    from sid import kaldi_io, provenance

    model_dir, wspec = args[0], args[-1]
    out_scp = kaldi_io.scp_of(wspec)
    marker = f"{out_scp}.made_by"
    if opts.skip_done and out_scp:
        # What changes the embeddings (not --batch-frames, --num-threads: they do not).
        options = (f"max_chunk_frames={opts.max_chunk_frames} min_chunk_frames={opts.min_chunk_frames} "
                   f"chunking={opts.chunking} model_file={opts.model_file}")
        inputs = [Path(model_dir) / opts.model_file, Path(model_dir) / "config.yaml"]
        if len(args) == 4:
            inputs += [*kaldi_io.files_of(args[1]), *kaldi_io.files_of(args[2])]
        else:
            # The audio table's own text (fingerprinting every audio file it lists would read them all).
            options += "".join(f" {name}={provenance.fingerprint(Path(args[1]) / name)}"
                               for name in ("wav.scp", "segments"))
        if not os.path.exists(out_scp) and os.path.exists(marker):
            os.remove(marker)
        if provenance.step_done(marker, options, inputs, "extract_embeddings"):
            log.info("%s is up to date; nothing to do", out_scp)
            return 0

    import torch

    from sid.errors import SidError
    from sid.extract import Extractor, pick_device

    torch.set_num_threads(max(1, opts.num_threads))
    device = pick_device(opts.use_gpu)
    ext = Extractor(model_dir, device, opts.max_chunk_frames, opts.min_chunk_frames, opts.batch_frames, opts.chunking)
    if ext.from_audio != (len(args) == 3):
        raise SidError(f"{model_dir} was trained from {'audio' if ext.from_audio else 'features'} "
                       f"(features.source in its config.yaml): give "
                       + ("<data-dir> (its audio)" if ext.from_audio else "<feats-rspecifier> <vad-rspecifier>"))
    counts = {"no_vad": 0, "no_voiced": 0}

    def audio_items():
        from sid.data.audio import AudioTable

        for utt, samples, _ in progress(AudioTable(args[1], sample_rate=ext.sample_rate),
                                        desc="extract_embeddings", unit="utt"):
            yield utt, ext.prepare_audio(utt, samples)

    def items():
        feats_rspec, vad = args[1], kaldi_io.random_access(args[2])
        reader = kaldi_io.read_matrices(feats_rspec)
        for utt, feats in progress(reader, desc="extract_embeddings", unit="utt"):
            if utt not in vad:
                log.warning("no VAD for utterance %s; skipping it", utt)
                counts["no_vad"] += 1
                continue
            prepared = ext.prepare(utt, feats, vad[utt])
            if prepared.shape[0] == 0:
                log.warning("utterance %s has no voiced frames; skipping it", utt)
                counts["no_voiced"] += 1
                continue
            yield utt, prepared

    embeddings = dict(ext.embed(audio_items() if ext.from_audio else items()))
    if not embeddings:
        raise SidError(f"no embeddings computed from {args[1]} (see the warnings above)")
    keys = sorted(embeddings, key=str.encode)
    with kaldi_io.TableWriter(wspec) as w:
        for k in keys:
            w.write(k, embeddings[k])
    if opts.skip_done and out_scp:
        provenance.step_finish(marker)
    log.info("Computed %d embeddings (%d-dim) on %s; %d utterances without VAD, %d without voiced frames",
             len(embeddings), next(iter(embeddings.values())).shape[0], device, counts["no_vad"], counts["no_voiced"])
    return 0


if __name__ == "__main__":
    run_main(main)
