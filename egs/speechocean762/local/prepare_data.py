#!/usr/bin/env python3
"""Usage: local/prepare_data.py [options] <corpus-dir> <data-dir>

Makes <data-dir>/train and <data-dir>/test from a speechocean762 tree
(WAVE/, train/ and optionally test/, as OpenSLR 101 lays it out; wav.scp paths
relative to the corpus root become absolute), and a VoxCeleb-format trial list
<data-dir>/test/test.voxceleb.txt (`1|0 path1 path2`, paths relative to the
corpus root, as the official VoxCeleb lists are).

With test/ present, train/ trains and test/ evaluates. With only train/, a
fixed set of --num-test-speakers speakers (chosen by --seed, balanced across
genders) is held out for evaluation.

--test-fold K holds out the K-th of the folds of --num-test-speakers speakers that partition
the speakers (fold 0 is the set above; fold k is chosen the same way, by --seed + k, among the
speakers no earlier fold holds; speakers left over are in no fold), so that every speaker is held
out once over the folds, for evaluation pooled over them (local/pool_folds.sh).

--dev-speakers N makes a development split instead: the held-out speakers are left out
altogether, and N of the training speakers (chosen the same way) are held out from the others
in their place, so settings can be chosen on trials that share no speaker with the test set;
--dev-fold K holds out the K-th fold of N of them instead (as --test-fold among all speakers).
"""

import os
import random
import sys
from pathlib import Path

from sid.cli import doc_argparser
from sid.data.table import read_dict, write_sorted
from sid.errors import SidError


def read_split(corpus: Path, split: str) -> tuple[dict, dict, dict]:
    folder = corpus / split
    for name in ("wav.scp", "utt2spk"):
        if not (folder / name).is_file():
            raise SidError(f"{folder / name} is missing: expected a speechocean762 tree (WAVE/, train/)")
    wav = read_dict(folder / "wav.scp")
    utt2spk = read_dict(folder / "utt2spk")
    gender = read_dict(folder / "spk2gender") if (folder / "spk2gender").is_file() else {}
    return wav, utt2spk, gender


def write_data_dir(out: Path, corpus: Path, wav: dict, utt2spk: dict, gender: dict, spks: set) -> None:
    utts = [u for u in utt2spk if utt2spk[u] in spks]
    missing = [u for u in utts if u not in wav]
    if missing:
        raise SidError(f"{len(missing)} utterances of utt2spk have no wav.scp entry, e.g. {missing[:3]}")
    out.mkdir(parents=True, exist_ok=True)
    write_sorted(out / "wav.scp", {u: os.path.join(corpus, wav[u]) for u in utts})
    write_sorted(out / "utt2spk", {u: utt2spk[u] for u in utts})
    spk2utt: dict[str, list] = {}
    for u in sorted(utts):
        spk2utt.setdefault(utt2spk[u], []).append(u)
    write_sorted(out / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    if gender:
        write_sorted(out / "spk2gender", {s: gender[s] for s in spks if s in gender})


def held_out_speakers(utt2spk: dict, gender: dict, num: int, seed: int) -> set:
    spks = sorted(set(utt2spk.values()))
    if num >= len(spks):
        raise SidError(f"cannot hold out {num} of {len(spks)} speakers")
    rng = random.Random(seed)
    by_gender: dict[str, list] = {}
    for s in spks:
        by_gender.setdefault(gender.get(s, "?"), []).append(s)
    chosen: list = []
    # Proportional per gender, so the test set is not all one gender by chance.
    for g, members in sorted(by_gender.items()):
        rng.shuffle(members)
        chosen += members[: round(num * len(members) / len(spks))]
    rest = [s for s in spks if s not in chosen]
    rng.shuffle(rest)
    return set(chosen[:num] + rest[: max(0, num - len(chosen))])


def test_fold(utt2spk: dict, gender: dict, num: int, seed: int, fold: int, options: tuple[str, str]) -> set:
    """The speakers of fold ``fold`` of ``len(speakers) // num``; ``options`` name the fold's and
    the size's command-line options for the error (``--test-fold``, ``--dev-fold``)."""
    spks = set(utt2spk.values())
    folds = len(spks) // num
    if not 0 <= fold < folds:
        raise SidError(f"{options[0]} {fold}: {len(spks)} speakers make folds 0-{folds - 1} of {num} ({options[1]})")
    left = dict(utt2spk)
    for k in range(fold + 1):
        held = held_out_speakers(left, gender, num, seed + k) if len(set(left.values())) > num else set(left.values())
        left = {u: s for u, s in left.items() if s not in held}
    return held


def make_trials(wav: dict, utt2spk: dict, per_utt: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    utts = sorted(utt2spk)
    by_spk: dict[str, list] = {}
    for u in utts:
        by_spk.setdefault(utt2spk[u], []).append(u)
    pairs = set()
    for u in utts:
        same = [v for v in by_spk[utt2spk[u]] if v != u]
        other = [v for v in utts if utt2spk[v] != utt2spk[u]]
        for v in rng.sample(same, min(per_utt, len(same))):
            pairs.add((1, *sorted((u, v))))
        for v in rng.sample(other, min(per_utt, len(other))):
            pairs.add((0, *sorted((u, v))))
    return [f"{t} {wav[a]} {wav[b]}" for t, a, b in sorted(pairs, key=lambda p: (p[1], p[2]))]


def main() -> int:
    ap = doc_argparser(__doc__)
    ap.add_argument("corpus", type=Path, help="speechocean762 folder (WAVE/, train/, optionally test/)")
    ap.add_argument("data", type=Path, help="where train/ and test/ data dirs go")
    ap.add_argument("--num-test-speakers", type=int, default=25,
                    help="speakers held out when there is no test/ (default %(default)s)")
    ap.add_argument("--max-train-speakers", type=int, default=0,
                    help="keep only N training speakers, for reduced runs (default %(default)s: all)")
    ap.add_argument("--trials-per-utt", type=int, default=10,
                    help="target and as many non-target trials per test utterance (default %(default)s)")
    ap.add_argument("--dev-speakers", type=int, default=0,
                    help="a development split: N of the training speakers held out instead of the test "
                         "speakers, which are left out (default %(default)s: none)")
    ap.add_argument("--test-fold", type=int, default=0,
                    help="hold out the K-th fold of --num-test-speakers speakers instead (without test/; "
                         "default %(default)s: the first, --seed's choice)")
    ap.add_argument("--seed", type=int, default=777, help="seed of the held-out choice (default %(default)s)")
    ap.add_argument("--dev-seed", type=int, default=None,
                    help="with --dev-speakers: seed of the development speakers' choice and trials, another "
                         "split of the same training speakers (default: --seed)")
    ap.add_argument("--dev-fold", type=int, default=None,
                    help="with --dev-speakers: hold out the K-th of the folds of N training speakers (as "
                         "--test-fold does among all speakers; drawn by the --dev-seed seed + K), for "
                         "development results pooled over them (default: none, the --dev-seed draw)")
    args = ap.parse_args()
    if (args.dev_seed is not None or args.dev_fold is not None) and not args.dev_speakers:
        raise SidError("--dev-seed and --dev-fold go with --dev-speakers (the test speakers are chosen by --seed)")
    dev_seed = args.seed if args.dev_seed is None else args.dev_seed
    corpus = args.corpus.resolve()
    if not (corpus / "train").is_dir():
        raise SidError(f"{corpus} has no train/ folder: pass --corpus DIR with WAVE/ and train/ (speechocean762)")

    wav, utt2spk, gender = read_split(corpus, "train")
    if (corpus / "test").is_dir():
        if args.test_fold:
            raise SidError(f"--test-fold: {corpus} has a test/ set, which is the held-out one")
        test_wav, test_u2s, test_gender = read_split(corpus, "test")
        train_spks = set(utt2spk.values())
        test_spks = set(test_u2s.values())
        if train_spks & test_spks:
            raise SidError(f"speakers in both train/ and test/: {sorted(train_spks & test_spks)[:5]}")
    else:
        test_spks = test_fold(utt2spk, gender, args.num_test_speakers, args.seed, args.test_fold,
                              ("--test-fold", "--num-test-speakers"))
        train_spks = set(utt2spk.values()) - test_spks
        test_wav, test_u2s, test_gender = wav, {u: s for u, s in utt2spk.items() if s in test_spks}, gender
    if args.dev_speakers:
        # The test speakers are left out; some of the training speakers are held out in their place.
        train_u2s = {u: s for u, s in utt2spk.items() if s in train_spks}
        test_spks = held_out_speakers(train_u2s, gender, args.dev_speakers, dev_seed) if args.dev_fold is None \
            else test_fold(train_u2s, gender, args.dev_speakers, dev_seed, args.dev_fold, ("--dev-fold", "--dev-speakers"))
        train_spks -= test_spks
        test_wav, test_u2s, test_gender = wav, {u: s for u, s in train_u2s.items() if s in test_spks}, gender
    if args.max_train_speakers:
        train_spks = set(sorted(train_spks)[: args.max_train_speakers])

    write_data_dir(args.data / "train", corpus, wav, utt2spk, gender, train_spks)
    write_data_dir(args.data / "test", corpus, test_wav, test_u2s, test_gender, test_spks)
    trials = make_trials(test_wav, test_u2s, args.trials_per_utt,
                         dev_seed + (args.dev_fold or 0) if args.dev_speakers else args.seed + args.test_fold)
    (args.data / "test" / "test.voxceleb.txt").write_text("\n".join(trials) + "\n")
    print(f"{sys.argv[0]}: {len(train_spks)} training speakers, {len(test_spks)} "
          f"{'development' if args.dev_speakers else 'test'} speakers, "
          f"{len(trials)} trials ({sum(t.startswith('1 ') for t in trials)} target)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from sid.cli import run_main
    run_main(main)
