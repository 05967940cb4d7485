"""Back-end speed at VoxCeleb scale, next to Kaldi's figures (issue 6), on synthetic vectors.

Usage: python bench/backend.py [--work-dir DIR] [--keep]
Makes 203,796 training vectors (512-dim, 5,994 speakers with synthetic ids and
unequal utterance counts) and 145,375 test vectors keyed by the real Vox1 ids of
../shared/voxceleb/trials/list_test_all.txt.gz (Vox1-E, 581,480 trials), with
speaker structure, as Kaldi binary archives. Then runs, as command lines with
Kaldi's pipes (the way egs/voxceleb/v2 runs Kaldi's binaries):
  LDA       ivector_compute_lda --dim=200 "ark:ivector_subtract_global_mean ... |" utt2spk
  PLDA      ivector_compute_plda spk2utt "ark:subtract | transform | normalize |"
  scoring   ivector_plda_scoring of Vox1-E through subtract-mean / LDA / length-norm pipes
  metrics   EER + minDCF(0.01, 0.001, 0.05) in-process on the Vox1-E scores (one sort)
and prints wall and CPU seconds (CPU of all processes of the pipeline) and the
largest resident memory of any one process. The machine is shared, so CPU
time is the steadier figure.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sid.backend import kaldi_io  # noqa: E402
from sid.backend.scoring import read_scores, read_trials  # noqa: E402
from sid.metrics import evaluate, labels_for  # noqa: E402
from sid.voxceleb import utt_id  # noqa: E402

SHARED = Path(os.environ.get("SID_SHARED", REPO.parent / "shared"))
KALDI = {"lda": 13.7, "plda": 16.3, "score": 26.7, "eer": 0.81, "mindcf": 2.92}
NUM_TRAIN, NUM_SPK, DIM = 203_796, 5_994, 512


def make_data(work: Path, rng: np.random.Generator) -> None:
    rows = []
    with gzip.open(SHARED / "voxceleb/trials/list_test_all.txt.gz", "rt") as f:
        for line in f:
            lab, a, b = line.split()
            rows.append((utt_id(a), utt_id(b), "target" if lab == "1" else "nontarget"))
    (work / "trials").write_text("".join(f"{a} {b} {t}\n" for a, b, t in rows))
    test_keys = sorted({k for a, b, _ in rows for k in (a, b)})
    # Speaker structure: low-rank between-speaker variation plus within-speaker noise.
    basis = rng.standard_normal((150, DIM)).astype(np.float32) * 0.1
    counts = rng.integers(8, 60, NUM_SPK)
    counts = np.maximum(1, np.round(counts * NUM_TRAIN / counts.sum())).astype(int)
    counts[-1] += NUM_TRAIN - counts.sum()
    spk = np.repeat(np.arange(NUM_SPK), counts)
    centres = rng.standard_normal((NUM_SPK, 150)).astype(np.float32) @ basis + 1.0
    train = centres[spk] + rng.standard_normal((NUM_TRAIN, DIM), dtype=np.float32) * 4.0
    keys = [f"spk{s:05d}-utt{i:07d}" for i, s in enumerate(spk)]
    kaldi_io.write_vectors(f"ark,scp:{work}/train.ark,{work}/train.scp", keys, train)
    (work / "utt2spk").write_text("".join(f"{k} spk{s:05d}\n" for k, s in zip(keys, spk)))
    spk2utt: dict[int, list[str]] = {}
    for k, s in zip(keys, spk):
        spk2utt.setdefault(s, []).append(k)
    (work / "spk2utt").write_text("".join(f"spk{s:05d} {' '.join(u)}\n" for s, u in sorted(spk2utt.items())))
    del train
    test_spk = sorted({k.split("-")[0] for k in test_keys})
    tcentres = {s: c for s, c in zip(test_spk, rng.standard_normal((len(test_spk), 150)).astype(np.float32) @ basis + 1.0)}
    test = np.stack([tcentres[k.split("-")[0]] for k in test_keys])
    test += rng.standard_normal(test.shape, dtype=np.float32) * 4.0
    kaldi_io.write_vectors(f"ark,scp:{work}/test.ark,{work}/test.scp", test_keys, test)
    print(f"data: {NUM_TRAIN} train vectors of {NUM_SPK} speakers, {len(test_keys)} test vectors, "
          f"{len(rows)} Vox1-E trials", flush=True)


def timed(cmd: str, work: Path) -> tuple[float, float, float]:
    """Wall s, CPU s of all child processes, and the largest child RSS (GB) of a shell command line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(["bash", "-c", cmd], cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed: {cmd}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024 ** 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--work-dir", default="", help="where to write the synthetic archives (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_backend."))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not (work / "test.scp").exists():
            make_data(work, np.random.default_rng(0))
        py = f"{sys.executable} -m sid.bin"
        sub = f"{py}.ivector_subtract_global_mean"
        steps = {
            "lda": f'{py}.ivector_compute_lda --total-covariance-factor=0.0 --dim=200 '
                   f'"ark:{sub} scp:train.scp ark:- |" ark:utt2spk transform.mat',
            "plda": f'{py}.ivector_compute_plda ark:spk2utt "ark:{sub} scp:train.scp ark:- | '
                    f'{py}.ivector_transform transform.mat ark:- ark:- | {py}.ivector_normalize_length ark:- ark:- |" plda',
            "mean": f"{py}.ivector_mean scp:train.scp mean.vec",
        }
        xf = (f"ark:{sub} mean.vec scp:test.scp ark:- | {py}.ivector_transform transform.mat ark:- ark:- | "
              f"{py}.ivector_normalize_length ark:- ark:- |")
        steps["score"] = (f'{py}.ivector_plda_scoring --normalize-length=true "{py}.ivector_copy_plda '
                          f'--smoothing=0.0 plda - |" "{xf}" "{xf}" trials scores')
        res = {name: timed(cmd, work) for name, cmd in steps.items()}

        k1, k2, scores = read_scores(str(work / "scores"))
        t1, t2, tlab = read_trials(str(work / "trials"))
        labels = labels_for(k1, k2, t1, t2, tlab, "scores")
        t0, c0 = time.perf_counter(), time.process_time()
        out = evaluate(scores, labels)
        metrics_wall, metrics_cpu = time.perf_counter() - t0, time.process_time() - c0

        print(f"{'stage':<34} {'wall s':>7} {'cpu s':>7} {'max RSS GB':>10}   Kaldi s  target s")
        for name, label in (("lda", "LDA 203,796 x 512 -> 200"), ("plda", "PLDA training (10 EM iters)")):
            w, c, m = res[name]
            print(f"{label:<34} {w:7.2f} {c:7.2f} {m:10.2f}   {KALDI[name]:7.2f}")
        lp = res["lda"][0] + res["plda"][0]
        print(f"{'LDA + PLDA training':<34} {lp:7.2f} {res['lda'][1] + res['plda'][1]:7.2f} {'':10}   "
              f"{KALDI['lda'] + KALDI['plda']:7.2f}  {(KALDI['lda'] + KALDI['plda']) / 3:7.2f}")
        w, c, m = res["score"]
        print(f"{'PLDA scoring Vox1-E (pipeline)':<34} {w:7.2f} {c:7.2f} {m:10.2f}   {KALDI['score']:7.2f}  "
              f"{KALDI['score'] / 10:7.2f}")
        print(f"{'EER + 3 minDCFs (581,480 trials)':<34} {metrics_wall:7.3f} {metrics_cpu:7.3f} {'':10}   "
              f"{KALDI['eer'] + KALDI['mindcf']:7.2f}  {0.5:7.2f}")
        print(f"(global mean: {res['mean'][0]:.2f} s; EER {out['eer']:.3f}%, minDCF(0.01) {out['mindcf_0.01']:.4f})")
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
