"""fix_data_dir: reduce a data dir to the utterances present in every file, sorted, spk2utt remade.

Reports how many were dropped from which file and why; the previous files are kept in
<data-dir>/.backup/ with a 'dropped' list (<utterance> <reason>).
"""

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import fix

USAGE = """Usage: fix_data_dir <data-dir>
Keep the utterances present in every utterance-keyed file; sort; remake spk2utt.
 e.g.: fix_data_dir data/train"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("utt-extra-files", "", "More utterance-keyed files to reduce (names, space-separated)")
    po.register("spk-extra-files", "", "More speaker-keyed files to reduce (names, space-separated)")
    opts, (data,) = po.parse(num_args=1)
    fix(data, utt_extra_files=opts.utt_extra_files.split(), spk_extra_files=opts.spk_extra_files.split())
    return 0


if __name__ == "__main__":
    run_main(main)
