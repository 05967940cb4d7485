"""split_data: split a data dir into <data-dir>/split<N>[utt]/<1..N>/ for parallel jobs."""

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import split

USAGE = """Usage: split_data [options] <data-dir> <num-to-split>
By speaker (no speaker in two parts) unless --per-utt; parts balanced by utterance count.
An existing split made from the same source files is reused.
 e.g.: split_data data/train 40"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("per-utt", False, "Split by utterance (speakers may span parts); writes split<N>utt")
    opts, (data, n) = po.parse(num_args=2)
    try:
        num = int(n)
    except ValueError:
        from sid.errors import SidError

        raise SidError(f"<num-to-split> must be a positive integer, got '{n}'") from None
    split(data, num, per_utt=opts.per_utt)
    return 0


if __name__ == "__main__":
    run_main(main)
