"""Back-end speed at VoxCeleb scale, next to Kaldi's figures (issue 6), on synthetic vectors.

Usage: python bench/backend.py [--work-dir DIR] [--keep] [--skip-pipes]
Makes 203,796 training vectors (512-dim, 5,994 speakers with synthetic ids and
unequal utterance counts) and 145,375 test vectors keyed by the real Vox1 ids of
../shared/voxceleb/trials/list_test_all.txt.gz (Vox1-E, 581,480 trials), with
speaker structure, as Kaldi binary archives with scp indexes. Each stage runs in
two forms:
  recipe (what steps/score_plda.sh runs; the issue's targets apply to this form):
    training  train_backend --lda-dim=200 scp:train.scp utt2spk DIR   (mean, LDA, PLDA in one process)
    scoring   score_plda --mean --transform DIR/plda scp:test.scp scp:test.scp trials scores
  Kaldi pipes (the tools with Kaldi's names, chained as egs/voxceleb/v2 chains Kaldi's binaries):
    LDA       ivector_compute_lda --dim=200 "ark:ivector_subtract_global_mean ... |" utt2spk
    PLDA      ivector_compute_plda spk2utt "ark:subtract | transform | normalize |"
    scoring   ivector_plda_scoring of Vox1-E through subtract-mean / LDA / length-norm pipes
  metrics     EER + minDCF(0.01, 0.001, 0.05) in-process on the Vox1-E scores (one sort)
and prints wall and CPU seconds (CPU of all processes of the stage) and the
largest resident memory of any one process of the stage, with the load average
before and after. The machine may be shared: CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sid import kaldi_io  # noqa: E402
from sid.backend.scoring import match_scores, read_scores, read_trials  # noqa: E402
from sid.metrics import evaluate  # noqa: E402
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


_RUN = """import json, resource, subprocess, sys, time
start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
proc = subprocess.run(["bash", "-c", sys.argv[1]], capture_output=True, text=True)
wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(json.dumps([proc.returncode, proc.stderr[-3000:], wall, cpu, after.ru_maxrss / 1024 ** 2]))
"""


def timed(cmd: str, work: Path) -> tuple[float, float, float]:
    """Wall s, CPU s of all processes, and the largest RSS (GB) of any one process of a shell command line.

    A fresh child runs the command so its peak-memory figure covers this stage only.
    """
    out = subprocess.run([sys.executable, "-c", _RUN, cmd], cwd=work, capture_output=True, text=True, check=True)
    rc, err, wall, cpu, rss = json.loads(out.stdout)
    if rc != 0:
        sys.exit(f"failed: {cmd}\n{err}")
    return wall, cpu, rss


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--work-dir", default="", help="where to write the synthetic archives (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--skip-pipes", action="store_true", help="time the recipe form only")
    args = ap.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_backend."))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not (work / "test.scp").exists():
            make_data(work, np.random.default_rng(0))
        py = f"{sys.executable} -m sid.bin"
        steps = {
            "train": f"{py}.train_backend --lda-dim=200 --total-covariance-factor=0.0 scp:train.scp ark:utt2spk be",
            "score": f"{py}.score_plda --mean=be/mean.vec --transform=be/transform.mat be/plda "
                     f"scp:test.scp scp:test.scp trials scores",
        }
        sub = f"{py}.ivector_subtract_global_mean"
        xf = (f"ark:{sub} mean.vec scp:test.scp ark:- | {py}.ivector_transform transform.mat ark:- ark:- | "
              f"{py}.ivector_normalize_length ark:- ark:- |")
        if not args.skip_pipes:
            steps.update({
                "lda": f'{py}.ivector_compute_lda --total-covariance-factor=0.0 --dim=200 '
                       f'"ark:{sub} scp:train.scp ark:- |" ark:utt2spk transform.mat',
                "plda": f'{py}.ivector_compute_plda ark:spk2utt "ark:{sub} scp:train.scp ark:- | '
                        f'{py}.ivector_transform transform.mat ark:- ark:- | {py}.ivector_normalize_length ark:- ark:- |" plda',
                "mean": f"{py}.ivector_mean scp:train.scp mean.vec",
                "pipe_score": f'{py}.ivector_plda_scoring --normalize-length=true "{py}.ivector_copy_plda '
                              f'--smoothing=0.0 plda - |" "{xf}" "{xf}" trials pipe_scores',
            })
        load_before = load()
        res = {name: timed(cmd, work) for name, cmd in steps.items()}
        load_after = load()

        scored, scores = read_scores(str(work / "scores"))
        labels = match_scores(read_trials(str(work / "trials"), need_labels=True), scored)
        t0, c0 = time.perf_counter(), time.process_time()
        out = evaluate(scores, labels)
        metrics_wall, metrics_cpu = time.perf_counter() - t0, time.process_time() - c0

        def row(label, w, c, m, kaldi, target=None):
            m_txt = f"{m:10.2f}" if m is not None else f"{'':10}"
            t_txt = f"{target:8.2f}" if target is not None else ""
            print(f"{label:<44} {w:7.2f} {c:7.2f} {m_txt}   {kaldi:7.2f}  {t_txt}")

        kaldi_train = KALDI["lda"] + KALDI["plda"]
        print(f"load average (1, 5, 15 min): {load_before} before, {load_after} after; {os.cpu_count()} cores")
        print(f"{'stage':<44} {'wall s':>7} {'cpu s':>7} {'max RSS GB':>10}   Kaldi s  target s")
        row("recipe: mean + LDA + PLDA training", *res["train"], kaldi_train, kaldi_train / 3)
        row("recipe: PLDA scoring Vox1-E", *res["score"], KALDI["score"], KALDI["score"] / 10)
        if not args.skip_pipes:
            row("Kaldi pipes: LDA 203,796 x 512 -> 200", *res["lda"], KALDI["lda"])
            row("Kaldi pipes: PLDA training (10 EM iters)", *res["plda"], KALDI["plda"])
            row("Kaldi pipes: LDA + PLDA training", res["lda"][0] + res["plda"][0], res["lda"][1] + res["plda"][1],
                max(res["lda"][2], res["plda"][2]), kaldi_train)
            row("Kaldi pipes: PLDA scoring Vox1-E", *res["pipe_score"], KALDI["score"])
        row("EER + 3 minDCFs (581,480 trials)", metrics_wall, metrics_cpu, None, KALDI["eer"] + KALDI["mindcf"], 0.5)
        print("(targets: a third of Kaldi's training time, a tenth of its scoring time, 0.5 s for the metrics; "
              "they apply to the recipe form)")
        extra = f"EER {out['eer']:.3f}%, minDCF(0.01) {out['mindcf_0.01']:.4f}"
        if not args.skip_pipes:
            _, pipe = read_scores(str(work / "pipe_scores"))
            extra = f"global mean (ivector_mean): {res['mean'][0]:.2f} s; {extra}; " \
                    f"recipe vs pipe scores: max |diff| {np.max(np.abs(pipe - scores)):.2g}"
        print(f"({extra})")
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
