#!/usr/bin/env python3
"""Full-scale dry run of the VoxCeleb data handling, without audio.

Usage: python bench/voxceleb_scale.py [--shared ../shared] [--work-dir DIR] [--keep]
                                      [--nj 40] [--num-aug 1000000]

Builds data dirs with the real utterance ids and durations of all of VoxCeleb2 dev
(1,092,009 utterances) and VoxCeleb1 (dev + test) from <shared>/voxceleb/durations/,
then times, each as the command a recipe runs (a fresh process):
  validate, fix and split into --nj jobs (VoxCeleb2 dev); the four augmented copies of
  Kaldi egs/voxceleb/v2 (reverb, noise, music, babble; recipes only); combining them
  (4x); subsetting --num-aug of them; combining that with the clean data; and
  converting the Vox1-E and Vox1-H lists against VoxCeleb1.
Prints wall and CPU seconds and peak memory (max RSS of the process and its
children) per step. CPU time is the figure to trust on a busy machine.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sid import voxceleb  # noqa: E402
from sid.data.table import write_sorted  # noqa: E402


def build_data_dir(utt2dur_gz: list[Path], root: str, ext: str, out: Path) -> int:
    """A data dir (wav.scp naming where the files would be, utt2spk, spk2utt, utt2dur)."""
    utts, durs = [], []
    for gz in utt2dur_gz:
        with gzip.open(gz, "rt") as f:
            for line in f:
                rel, dur = line.split()
                utt = voxceleb.utt_id(rel + "." + ext)
                utts.append((utt, utt.split("-", 1)[0], f"{root}/{rel}.{ext}"))
                durs.append(float(dur))
    voxceleb.write_data_dir(out, utts, durs)
    return len(utts)


def build_all(dur_dir: Path, work: Path) -> None:
    """VoxCeleb2 dev and VoxCeleb1 data dirs, MUSAN-like noise dirs and RIR lists under ``work``."""
    import numpy as np
    import soundfile as sf

    data = work / "data"
    t0 = time.perf_counter()
    n2 = build_data_dir([dur_dir / "vox2_dev.utt2dur.gz"], "/corpora/voxceleb2/dev/aac", "m4a", data / "vox2_dev")
    n1 = build_data_dir([dur_dir / "vox1_dev.utt2dur.gz", dur_dir / "vox1_tst.utt2dur.gz"],
                        "/corpora/voxceleb1/wav", "wav", data / "vox1")
    print(f"built data dirs: VoxCeleb2 dev {n2:,} utterances, VoxCeleb1 {n1:,} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    # Noise dirs and RIR lists the augmentation draws from (a few real tiny files:
    # the RIR list reader checks that its files exist; recipes are only written).
    for kind, n in (("noise", 930), ("music", 660), ("speech", 426)):
        d = data / f"musan_{kind}"
        d.mkdir()
        names = [f"{kind}-{i:04d}" for i in range(n)]
        write_sorted(d / "wav.scp", ((u, f"/corpora/musan/{kind}/{u}.wav") for u in names))
        write_sorted(d / "utt2spk", ((u, u) for u in names))
        write_sorted(d / "spk2utt", ((u, u) for u in names))
        write_sorted(d / "utt2dur", ((u, f"{3 + i % 20}.0") for i, u in enumerate(names)))
    for room in ("smallroom", "mediumroom"):
        rdir = work / "rirs" / room
        rdir.mkdir(parents=True)
        lines = []
        for i in range(200):
            sf.write(rdir / f"r{i}.wav", np.zeros(16, np.int16), 16000)
            lines.append(f"--rir-id {room}-{i} --room-id {room} {rdir}/r{i}.wav\n")
        (rdir / "rir_list").write_text("".join(lines))



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--work-dir", help="where the data dirs go (default: a temporary folder, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--nj", type=int, default=40)
    ap.add_argument("--num-aug", type=int, default=1000000)
    args = ap.parse_args()
    shared = Path(args.shared)
    dur_dir = shared / "voxceleb" / "durations"
    trials = shared / "voxceleb" / "trials"
    if not dur_dir.is_dir():
        sys.exit(f"{dur_dir}: no such directory (the shared VoxCeleb durations)")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="voxceleb_scale."))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C",
               PATH=os.pathsep.join([str(REPO / "utils"), str(REPO / "steps"), str(Path(sys.executable).parent),
                                     os.environ.get("PATH", "")]))
    data = work / "data"
    try:
        # Built in a child process: a child's peak RSS starts from its parent's size at
        # fork, so the parent must stay small for the figures below to mean anything.
        builder = multiprocessing.get_context("spawn").Process(target=build_all, args=(dur_dir, work))
        builder.start()
        builder.join()
        if builder.exitcode != 0:
            sys.exit("building the data dirs failed")
        py = sys.executable
        v2 = str(data / "vox2_dev")
        steps = [
            ("validate_data_dir.sh --no-feats (vox2 dev)", ["bash", "utils/validate_data_dir.sh", "--no-feats", v2]),
            ("fix_data_dir.sh (vox2 dev)", ["bash", "utils/fix_data_dir.sh", v2]),
            (f"split_data.sh {args.nj} (vox2 dev)", ["bash", "utils/split_data.sh", v2, str(args.nj)]),
            ("reverberate_data_dir (1x)", [py, "-m", "sid.bin.reverberate_data_dir",
                                           "--rir-set-parameters", f"0.5, {work}/rirs/smallroom/rir_list",
                                           "--rir-set-parameters", f"0.5, {work}/rirs/mediumroom/rir_list",
                                           v2, f"{data}/reverb"]),
            ("augment_data_dir noise (1x)", [py, "-m", "sid.bin.augment_data_dir", "--utt-suffix", "noise",
                                             "--fg-interval", "1", "--fg-snrs", "15:10:5:0",
                                             "--fg-noise-dir", f"{data}/musan_noise", v2, f"{data}/noise"]),
            ("augment_data_dir music (1x)", [py, "-m", "sid.bin.augment_data_dir", "--utt-suffix", "music",
                                             "--bg-snrs", "15:10:8:5", "--num-bg-noises", "1",
                                             "--bg-noise-dir", f"{data}/musan_music", v2, f"{data}/music"]),
            ("augment_data_dir babble (1x)", [py, "-m", "sid.bin.augment_data_dir", "--utt-suffix", "babble",
                                              "--bg-snrs", "20:17:15:13", "--num-bg-noises", "3:4:5:6:7",
                                              "--bg-noise-dir", f"{data}/musan_speech", v2, f"{data}/babble"]),
            ("combine_data.sh (4x aug)", ["bash", "utils/combine_data.sh", f"{data}/aug", f"{data}/reverb",
                                          f"{data}/noise", f"{data}/music", f"{data}/babble"]),
            (f"subset_data_dir.sh {args.num_aug:,} of 4x", ["bash", "utils/subset_data_dir.sh", f"{data}/aug",
                                                            str(args.num_aug), f"{data}/aug_subset"]),
            ("combine_data.sh (subset + clean)", ["bash", "utils/combine_data.sh", f"{data}/combined",
                                                  f"{data}/aug_subset", v2]),
            ("validate_data_dir.sh --no-feats (combined)", ["bash", "utils/validate_data_dir.sh", "--no-feats",
                                                            f"{data}/combined"]),
            ("trials Vox1-E (list_test_all)", [py, "local/make_voxceleb1_trials.py", "--data-dir", f"{data}/vox1",
                                               str(trials / "list_test_all.txt.gz"), f"{data}/vox1/trials_E"]),
            ("trials Vox1-H (list_test_hard)", [py, "local/make_voxceleb1_trials.py", "--data-dir", f"{data}/vox1",
                                                str(trials / "list_test_hard.txt.gz"), f"{data}/vox1/trials_H"]),
        ]
        print(f"{'step':<46} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}", flush=True)
        worst = 0
        for name, cmd in steps:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # wait4 gives this child's own rusage (with its reaped children).
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"{name} failed: {' '.join(cmd)}\n{err}")
            peak = ru.ru_maxrss / 1024
            worst = max(worst, peak)
            print(f"{name:<46} {wall:8.1f} {ru.ru_utime + ru.ru_stime:8.1f} {peak:8.0f}", flush=True)
        lines = sum(1 for _ in open(data / "combined" / "utt2spk"))
        print(f"combined training dir: {lines:,} utterances; largest peak memory {worst:.0f} MB")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
