"""Read and write a data dir's record of how its features were made (sid.provenance)."""

from sid.cli import KaldiOptions, run_main

USAGE = """Record, carry and check how a data dir's features were made (<data>/conf/<type>.conf,
<data>/.feats_done holding the feature type and the options' checksum, <data>/cmvn_opts).
Usage:  feature_record validate <feat-type> <feat-config>        (the config parses; nothing written)
        feature_record write <feat-type> <feat-config> <data-dir>  (after steps/make_features.sh)
        feature_record copy <src-data-dir>... <dest-data-dir>     (to a copy, subset or combination;
                                                                   the sources must agree)
        feature_record match <model-dir> <data-dir>              (the data's features are made as the
                                                                   model's training features, or it has
                                                                   audio for a model trained from audio;
                                                                   prints the source: features or audio)
 e.g.:  feature_record match exp/xvector data/voxceleb1_test"""

ARGS = {"validate": (2, 2), "write": (3, 3), "copy": (2, 1000), "match": (2, 2)}


def main() -> int:
    po = KaldiOptions(USAGE)
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
        provenance.write_record(args[2], args[0], args[1])
    elif verb == "copy":
        provenance.copy_record(args[:-1], args[-1])
    else:
        print(provenance.check_match(*args))
    return 0


if __name__ == "__main__":
    run_main(main)
