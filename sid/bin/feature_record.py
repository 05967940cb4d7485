"""Read and write a data dir's record of how its features were made (sid.provenance)."""

from sid.cli import KaldiOptions, run_main

USAGE = """Record, carry and check how a data dir's features were made (<data>/conf/<type>.conf,
<data>/.feats_done holding the feature type, the options' checksum and the compression, <data>/cmvn_opts;
<data>/conf/vad.conf, conf/vad_on_<type>.conf and .vad_done for its VAD).
Usage:  feature_record validate <feat-type> <feat-config>        (the config parses; nothing written)
        feature_record write <feat-type> <feat-config> <data-dir>  (after steps/make_features.sh)
        feature_record vad <vad-config> <data-dir>               (after steps/compute_vad_decision.sh)
        feature_record copy-vad <src-data-dir> <dest-data-dir>   (dest took src's vad.scp)
        feature_record copy <src-data-dir>... <dest-data-dir>     (to a copy, subset or combination;
                                                                   the sources must agree)
        feature_record match <model-dir> <data-dir>              (the data's features are made as the
                                                                   model's training features, or it has
                                                                   audio for a model trained from audio;
                                                                   prints the source: features or audio)
 e.g.:  feature_record match exp/xvector data/voxceleb1_test"""

ARGS = {"validate": (2, 2), "write": (3, 3), "vad": (2, 2), "copy-vad": (2, 2), "copy": (2, 1000), "match": (2, 2)}


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("compress", True, "write: the features are stored compressed (make_features.sh --compress)")
    opts, args = po.parse(num_args=(3, 1001))

    from sid import provenance
    from sid.errors import SidError

    verb, args = args[0], args[1:]
    if verb not in ARGS:
        raise SidError(f"unknown action '{verb}'; allowed: {', '.join(ARGS)}")
    lo, hi = ARGS[verb]
    if not lo <= len(args) <= hi:
        raise SidError(f"feature_record {verb}: wrong number of arguments (see --help)")
    if verb == "validate":
        provenance.validate_config(*args)
    elif verb == "write":
        provenance.write_record(args[2], args[0], args[1], opts.compress)
    elif verb == "vad":
        provenance.write_vad_record(args[1], args[0])
    elif verb == "copy-vad":
        provenance.copy_vad_record(*args)
    elif verb == "copy":
        provenance.copy_record(args[:-1], args[-1])
    else:
        print(provenance.check_match(*args))
    return 0


if __name__ == "__main__":
    run_main(main)
