"""compute_mfcc_feats: Kaldi's compute-mfcc-feats (see sid.features.extract)."""

from sid.cli import run_main
from sid.features.extract import main

if __name__ == "__main__":
    run_main(lambda: main("mfcc"))
