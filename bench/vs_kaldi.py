"""Speed, memory and parity of our tools beside Kaldi's own binaries: same inputs, same run.

Usage: python bench/vs_kaldi.py [--kaldi-bin DIR] [--cache-dir DIR] [--runs 2] [--threads 1,default]
                                [--groups startup,features,backend] [--hours 1.0] [--num-train 203796]
                                [--json FILE]

Each stage runs a Kaldi command line twice: once with Kaldi's binaries and once with
ours swapped in (``compute-fbank-feats`` -> ``python -m sid.bin.compute_fbank_feats``,
pipes and all), on the same inputs, alternating the sides run after run so both see
the same load. For each side it prints the wall and CPU seconds of the whole command
(all processes of a pipe) and the peak resident memory of its largest process, and the
ratio ours / Kaldi of the best run of each; then whether the outputs agree. Our side runs
from compiled bytecode (``compileall`` first), as an installed package does.

  startup   every Kaldi-named tool on a tiny input (one utterance; the 10-utterance and
            2,400-vector inputs of ../shared/reference/kaldi): the cost of starting.
  features  fbank (80 bins) and MFCC (30) on --hours of real 16 kHz audio (speechocean762,
            decoded once into the cache), with --dither=0 (comparable outputs) and fbank with
            the recipe's dither; compute-vad, apply-cmvn-sliding, select-voiced-frames on
            Kaldi's features of that audio.
  backend   VoxCeleb scale on synthetic x-vectors (--num-train 512-dim training vectors of
            5,994 speakers, the test vectors of Vox1-E with its 581,480 trials): the recipe's
            Kaldi pipes (ivector-mean, ivector-compute-lda, ivector-compute-plda,
            ivector-plda-scoring, compute-eer) and our one-process tools (train_backend,
            score_plda) against the same Kaldi pipes.

Threads: "1" pins OMP/OpenBLAS/MKL threads (and SID_BLAS_THREADS) to one for both sides;
"default" leaves every side at its own default. Goals (issue 15), checked on the CPU time
of the single-threaded runs: every Kaldi-named tool at most as slow as Kaldi's (ratio <= 1)
with at most 1.5x its peak memory at scale; start-up of a tool that neither trains nor runs a
network <= 0.3 s; fbank per hour (whole hour minus start-up) <= 0.5x Kaldi's; one-process
scoring <= 0.1x and training <= 0.2x Kaldi's pipes. Parity: features within
max(2e-3, 1e-4 |x|) (the parity tests' bound) but for at most 1 value in 10^4: the log of
a mel bin 20 nats below its frame's strongest is float FFT rounding on both sides (there
the energies agree to 2e-5 of the frame's peak); VAD identical, scores within 1e-4, EER identical.
Without Kaldi's binaries (or their OpenBLAS) the bench says why and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sid import kaldi_io  # noqa: E402

SHARED = Path(os.environ.get("SID_SHARED", REPO.parent / "shared"))
REF = SHARED / "reference" / "kaldi"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SID_BLAS_THREADS")
# Tools that train a model: the start-up goal does not apply to them.
TRAINERS = {"ivector-compute-lda", "ivector-compute-plda"}
NUM_SPK, DIM = 5_994, 512


# ---------------------------------------------------------------- inputs

def audio_hour(cache: Path, hours: float) -> Path:
    """A wav.scp of the first ``hours`` of speechocean762 decoded to 16-bit 16 kHz wav (made once)."""
    import soundfile as sf

    from sid.data.audio import read_audio

    out = cache / f"speechocean762_{hours:g}h"
    scp = out / "wav.scp"
    if scp.exists():
        return scp
    corpus = SHARED / "corpora" / "speechocean762"
    (out / "wav").mkdir(parents=True, exist_ok=True)
    lines, seconds = [], 0.0
    print(f"decoding {hours:g} h of {corpus} into {out} (once)", flush=True)
    for line in (corpus / "train" / "wav.scp").read_text().splitlines():
        utt, path = line.split(maxsplit=1)
        x, sr = read_audio(str(corpus / path.strip()), utt=utt, sample_rate=16000)
        wav = out / "wav" / f"{utt}.wav"
        sf.write(wav, np.clip(np.round(x), -32768, 32767).astype(np.int16), sr, subtype="PCM_16")
        lines.append(f"{utt} {wav}\n")
        seconds += len(x) / sr
        if seconds >= hours * 3600:
            break
    if seconds < hours * 3600 * 0.99:
        sys.exit(f"{corpus} holds only {seconds / 3600:.2f} h, less than --hours={hours:g}")
    tmp = scp.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(scp)
    return scp


def backend_data(cache: Path, num_train: int) -> Path:
    """Synthetic x-vectors with speaker structure at VoxCeleb scale and the Vox1-E trials (made once).

    Training: ``num_train`` 512-dim vectors of 5,994 speakers with unequal utterance counts;
    test: one vector per file of list_test_all.txt (Vox1-E) under its real id.
    """
    from sid.voxceleb import utt_id

    out = cache / f"backend_{num_train}"
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    print(f"making {num_train} training and the Vox1-E test vectors in {out} (once)", flush=True)
    rng = np.random.default_rng(0)
    rows = []
    with gzip.open(SHARED / "voxceleb" / "trials" / "list_test_all.txt.gz", "rt") as f:
        for line in f:
            lab, a, b = line.split()
            rows.append((utt_id(a), utt_id(b), "target" if lab == "1" else "nontarget"))
    (out / "trials").write_text("".join(f"{a} {b}\n" for a, b, _ in rows))
    (out / "trials_key").write_text("".join(f"{a} {b} {t}\n" for a, b, t in rows))
    test_keys = sorted({k for a, b, _ in rows for k in (a, b)})
    # Low-rank between-speaker variation plus within-speaker noise, offset from the origin.
    basis = rng.standard_normal((150, DIM)).astype(np.float32) * 0.1
    counts = rng.integers(8, 60, NUM_SPK)
    counts = np.maximum(1, np.round(counts * num_train / counts.sum())).astype(int)
    counts[-1] += num_train - counts.sum()
    spk = np.repeat(np.arange(NUM_SPK), counts)
    centres = rng.standard_normal((NUM_SPK, 150)).astype(np.float32) @ basis + 1.0
    train = centres[spk] + rng.standard_normal((num_train, DIM), dtype=np.float32) * 4.0
    keys = [f"spk{s:05d}-utt{i:07d}" for i, s in enumerate(spk)]
    kaldi_io.write_vectors(f"ark,scp:{out}/train.ark,{out}/train.scp", keys, train)
    del train
    (out / "utt2spk").write_text("".join(f"{k} spk{s:05d}\n" for k, s in zip(keys, spk)))
    spk2utt: dict[int, list[str]] = {}
    for k, s in zip(keys, spk):
        spk2utt.setdefault(s, []).append(k)
    (out / "spk2utt").write_text("".join(f"spk{s:05d} {' '.join(u)}\n" for s, u in sorted(spk2utt.items())))
    test_spk = sorted({k.split("-")[0] for k in test_keys})
    tc = dict(zip(test_spk, rng.standard_normal((len(test_spk), 150)).astype(np.float32) @ basis + 1.0))
    test = np.stack([tc[k.split("-")[0]] for k in test_keys])
    test += rng.standard_normal(test.shape, dtype=np.float32) * 4.0
    kaldi_io.write_vectors(f"ark,scp:{out}/test.ark,{out}/test.scp", test_keys, test)
    (out / "done").write_text("")
    return out


# ---------------------------------------------------------------- running

_RUN = """import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(["bash", "-c", "set -o pipefail; " + sys.argv[1]], capture_output=True, text=True)
wall, r = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:], wall,
                  r.ru_utime + r.ru_stime, r.ru_maxrss / 1024]))
"""


@dataclass
class Measure:
    wall: float
    cpu: float
    rss_mb: float
    stdout: str = ""


def run(cmd: str, cwd: Path, env: dict) -> Measure:
    """Wall s, CPU s of all its processes, largest RSS (MB) of any one, of a bash command line.

    A fresh interpreter runs it so the peak-memory figure covers this command only.
    """
    out = subprocess.run([sys.executable, "-c", _RUN, cmd], cwd=cwd, env=env, capture_output=True, text=True,
                         check=True)
    rc, stdout, stderr, wall, cpu, rss = json.loads(out.stdout)
    if rc != 0:
        sys.exit(f"failed (status {rc}) in {cwd}:\n{cmd}\n{stderr}")
    return Measure(wall, cpu, rss, stdout + stderr)


@dataclass
class Stage:
    group: str
    label: str
    template: str                 # a Kaldi command line; {tool-name} becomes the side's binary
    parity: str | None = None     # what to compare: feats, vad, vec, lda, scores, eer
    output: str = ""              # the file compared
    goal: str = "tool"            # tool: ratio <= 1 (and memory <= 1.5x at scale); startup; train; score; none
    scale: bool = False           # memory goal applies
    kaldi_output: str = ""        # Kaldi's file to compare with when it is not ``output``
    kaldi_from: tuple = ()        # one-process rows: Kaldi's side is the sum of these rows of the same run
    runs: dict = field(default_factory=lambda: {"kaldi": [], "ours": []})


def tool(side: str, name: str, kaldi_bin: Path) -> str:
    if side == "kaldi":
        return str(kaldi_bin / name)
    return f"{sys.executable} -m sid.bin.{name.replace('-', '_')}"


def expand(template: str, side: str, kaldi_bin: Path) -> str:
    return re.sub(r"\{([a-z][a-z_-]*)\}", lambda m: tool(side, m.group(1), kaldi_bin), template)


def side_env(kaldi_bin: Path, threads: str) -> dict:
    # Our side runs from compiled bytecode as an installed package does (Kaldi's side is
    # compiled too): with PYTHONDONTWRITEBYTECODE every start would recompile ~40 ms of sources.
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    lib = kaldi_bin.parent / "lib"
    if lib.is_dir():
        env["LD_LIBRARY_PATH"] = f"{lib}:{env['LD_LIBRARY_PATH']}" if env.get("LD_LIBRARY_PATH") else str(lib)
    for var in THREAD_VARS:
        env.pop(var, None)
        if threads == "1":
            env[var] = "1"
    return env


def probe(kaldi_bin: Path) -> str | None:
    """Why Kaldi's binaries cannot run here, or None."""
    exe = kaldi_bin / "compute-fbank-feats"
    if not kaldi_bin.is_dir():
        return f"no Kaldi binaries: {kaldi_bin} does not exist (give --kaldi-bin DIR)"
    if not os.access(exe, os.X_OK):
        return f"no Kaldi binaries: {exe} is missing or not executable"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=side_env(kaldi_bin, "1"))
    if "Usage" not in proc.stdout + proc.stderr:
        first = (proc.stderr or proc.stdout).strip().splitlines()[:1]
        return (f"Kaldi's binaries do not run here ({first[0] if first else f'status {proc.returncode}'}); "
                "they need Debian's OpenBLAS: apt-get install -y libopenblas0-pthread")
    return None


# ---------------------------------------------------------------- parity

def _tables(path: Path) -> dict:
    return dict(kaldi_io.read_matrices(f"ark:{path}"))


def parity(kind: str, kaldi: Path, ours: Path, kaldi_out: str, ours_out: str) -> tuple[bool, str]:
    """Do the two sides' outputs agree? ``(ok, how)``."""
    if kind in ("feats", "vad"):
        a, b = _tables(kaldi / kaldi_out), _tables(ours / ours_out)
        if list(a) != list(b):
            return False, f"keys differ ({len(a)} vs {len(b)})"
        bad = [k for k in a if a[k].shape != b[k].shape]
        if bad:
            return False, f"shape of '{bad[0]}' {a[bad[0]].shape} vs {b[bad[0]].shape}"
        if kind == "vad":
            diff = sum(int(np.sum(a[k] != b[k])) for k in a)
            total = sum(a[k].size for k in a)
            return diff == 0, f"{diff} of {total} frames differ"
        worst, over, total = 0.0, 0, 0
        for k in a:
            d = np.abs(a[k].astype(np.float64) - b[k])
            worst = max(worst, float(d.max(initial=0.0)))
            over += int(np.sum(d > np.maximum(2e-3, 1e-4 * np.abs(a[k]))))
            total += d.size
        return over <= total * 1e-4, f"max abs diff {worst:.2g}; {over} of {total} values over the bound"
    if kind == "vec":
        a, b = kaldi_io.read_vector(str(kaldi / kaldi_out)), kaldi_io.read_vector(str(ours / ours_out))
        d = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a))))
        return d <= 1e-5, f"max rel diff {d:.2g}"
    if kind == "lda":
        a, b = kaldi_io.read_matrix(str(kaldi / kaldi_out)), kaldi_io.read_matrix(str(ours / ours_out))
        if a.shape != b.shape:
            return False, f"shape {a.shape} vs {b.shape}"
        sign = np.sign(np.sum(a * b, axis=1, keepdims=True))  # eigenvectors are unique up to sign
        d = float(np.max(np.abs(a - sign * b)))
        return d <= 1e-3, f"max abs diff {d:.2g} (rows up to sign)"
    if kind == "scores":
        a, b = _scores(kaldi / kaldi_out), _scores(ours / ours_out)
        if a[0] != b[0]:
            return False, "trial lists differ"
        d = float(np.max(np.abs(a[1] - b[1])))
        return d <= 1e-4, f"max abs diff {d:.2g}"
    if kind == "scores+eer":
        ok, how = parity("scores", kaldi, ours, kaldi_out, ours_out)
        from sid.metrics import compute_eer

        key = (kaldi.parent / "trials_key").read_text().split()
        target = {(a, b): t == "target" for a, b, t in zip(key[0::3], key[1::3], key[2::3])}
        fields = (ours / ours_out).read_text().split()
        is_t = np.array([target[k] for k in zip(fields[0::3], fields[1::3])])
        sc = np.array(fields[2::3], dtype=np.float32)
        ours_eer = f"{compute_eer(sc[is_t], sc[~is_t])[0] * 100:.4f}"
        kaldi_eer = _eer(kaldi / "eer")
        return ok and ours_eer == kaldi_eer, f"{how}; EER {kaldi_eer}% vs {ours_eer}%"
    if kind == "eer":
        a, b = _eer(kaldi / kaldi_out), _eer(ours / ours_out)
        return a == b, f"EER {a}% vs {b}%"
    raise ValueError(kind)


def _scores(path: Path) -> tuple[list, np.ndarray]:
    fields = path.read_text().split()
    return fields[0::3] + fields[1::3], np.array(fields[2::3], dtype=np.float64)


def _eer(path: Path) -> str:
    """The EER of a captured compute-eer output: Kaldi logs 'Equal error rate is X%'; ours prints X."""
    text = path.read_text()
    m = re.search(r"Equal error rate is ([0-9.eE+-]+)%", text)
    value = float(m.group(1)) if m else float(text.split()[0])
    return f"{value:.4f}"


# ---------------------------------------------------------------- stages

def stages(groups: set[str], wav_scp: Path | None, one_scp: Path | None, bd: Path | None, num_train: int,
           kaldi_dir: str) -> list[Stage]:
    conf = REPO / "conf"
    ref_f, ref_b = REF / "features", REF / "backend"
    xf1 = (f"ark:{{ivector-subtract-global-mean}} {ref_b}/mean.vec ark,t:{ref_b}/test.txt ark:- | "
           f"{{ivector-transform}} {ref_b}/lda.mat ark:- ark:- | {{ivector-normalize-length}} ark:- ark:- |")
    out: list[Stage] = []
    if "startup" in groups:
        if one_scp is not None:
            out += [
                Stage("startup", "compute-fbank-feats, 1 utterance",
                      f"{{compute-fbank-feats}} --config={conf}/fbank80.conf --dither=0 scp:{one_scp} ark:f1.ark",
                      "feats", "f1.ark", "startup"),
                Stage("startup", "compute-mfcc-feats, 1 utterance",
                      f"{{compute-mfcc-feats}} --config={conf}/mfcc.conf --dither=0 scp:{one_scp} ark:m1.ark",
                      "feats", "m1.ark", "startup"),
            ]
        out += [
            Stage("startup", "compute-vad, 10 utterances",
                  f"{{compute-vad}} --config={conf}/vad.conf ark,t:{ref_f}/mfcc30.txt ark:v1.ark", "vad", "v1.ark",
                  "startup"),
            Stage("startup", "apply-cmvn-sliding, 10 utterances",
                  f"{{apply-cmvn-sliding}} --norm-vars=false --center=true --cmn-window=300 "
                  f"ark,t:{ref_f}/fbank80.txt ark:c1.ark", "feats", "c1.ark", "startup"),
            Stage("startup", "select-voiced-frames, 10 utterances",
                  f"{{select-voiced-frames}} ark,t:{ref_f}/mfcc30.txt ark,t:{ref_f}/vad.txt ark:s1.ark",
                  "feats", "s1.ark", "startup"),
            Stage("startup", "copy-feats, 10 utterances",
                  f"{{copy-feats}} ark,t:{ref_f}/fbank80.txt ark:cp1.ark", "feats", "cp1.ark", "startup"),
            Stage("startup", "ivector-mean, 2,400 x 100",
                  f"{{ivector-mean}} ark,t:{ref_b}/train.txt mean1.vec", "vec", "mean1.vec", "startup"),
            Stage("startup", "ivector-subtract-global-mean, -transform, -normalize-length in a pipe (3 tools)",
                  f"{{ivector-subtract-global-mean}} {ref_b}/mean.vec ark,t:{ref_b}/test.txt ark:- | "
                  f"{{ivector-transform}} {ref_b}/lda.mat ark:- ark:- | {{ivector-normalize-length}} ark:- ark:xf1.ark",
                  "feats", "xf1.ark", "startup"),
            Stage("startup", "ivector-compute-lda, 2,400 x 100 -> 50",
                  f"{{ivector-compute-lda}} --total-covariance-factor=0.0 --dim=50 ark,t:{ref_b}/train.txt "
                  f"ark:{ref_b}/utt2spk lda1.mat", "lda", "lda1.mat", "none"),
            Stage("startup", "ivector-plda-scoring of 16,955 trials in its pipe (5 tools)",
                  f"{{ivector-plda-scoring}} --normalize-length=true \"{{ivector-copy-plda}} --smoothing=0.0 "
                  f"{ref_b}/plda.txt - |\" \"{xf1}\" \"{xf1}\" \"cut -d' ' -f1,2 {ref_b}/trials_utt |\" scores1",
                  "scores", "scores1", "startup"),
            Stage("startup", "compute-eer, 16,955 trials",
                  f"{{compute-eer}} {ref_b}/score_key.txt > eer1 2>&1", "eer", "eer1", "startup"),
        ]
    if "features" in groups and wav_scp is not None:
        k = f"../{kaldi_dir}"
        out += [
            Stage("features", "compute-fbank-feats 80, 1 h, --dither=0",
                  f"{{compute-fbank-feats}} --config={conf}/fbank80.conf --dither=0 scp:{wav_scp} ark:fbank.ark",
                  "feats", "fbank.ark", scale=True),
            Stage("features", "compute-fbank-feats 80, 1 h, recipe dither 1.0",
                  f"{{compute-fbank-feats}} --config={conf}/fbank80.conf scp:{wav_scp} ark:fbank_dither.ark",
                  None, scale=True),
            Stage("features", "compute-mfcc-feats 30, 1 h, --dither=0",
                  f"{{compute-mfcc-feats}} --config={conf}/mfcc.conf --dither=0 scp:{wav_scp} ark:mfcc.ark",
                  "feats", "mfcc.ark", scale=True),
            Stage("features", "compute-vad on Kaldi's 1 h MFCCs",
                  f"{{compute-vad}} --config={conf}/vad.conf ark:{k}/mfcc.ark ark:vad.ark", "vad", "vad.ark",
                  scale=True),
            Stage("features", "apply-cmvn-sliding 300 on Kaldi's 1 h fbank",
                  f"{{apply-cmvn-sliding}} --norm-vars=false --center=true --cmn-window=300 ark:{k}/fbank.ark "
                  "ark:cmn.ark", "feats", "cmn.ark", scale=True),
            Stage("features", "select-voiced-frames on Kaldi's 1 h MFCCs + VAD",
                  f"{{select-voiced-frames}} ark:{k}/mfcc.ark ark:{k}/vad.ark ark:voiced.ark", "feats", "voiced.ark",
                  scale=True),
        ]
    if "backend" in groups and bd is not None:
        xf = (f"ark:{{ivector-subtract-global-mean}} mean.vec scp:{bd}/test.scp ark:- | "
              "{ivector-transform} transform.mat ark:- ark:- | {ivector-normalize-length} ark:- ark:- |")
        out += [
            Stage("backend", f"ivector-mean, {num_train:,} x {DIM}",
                  f"{{ivector-mean}} scp:{bd}/train.scp mean.vec", "vec", "mean.vec", scale=True),
            Stage("backend", "ivector-compute-lda 512 -> 200 in its pipe",
                  f"{{ivector-compute-lda}} --total-covariance-factor=0.0 --dim=200 "
                  f"\"ark:{{ivector-subtract-global-mean}} scp:{bd}/train.scp ark:- |\" ark:{bd}/utt2spk transform.mat",
                  "lda", "transform.mat", scale=True),
            Stage("backend", "ivector-compute-plda (10 EM iters) in its pipe",
                  f"{{ivector-compute-plda}} ark:{bd}/spk2utt \"ark:{{ivector-subtract-global-mean}} "
                  f"scp:{bd}/train.scp ark:- | {{ivector-transform}} transform.mat ark:- ark:- | "
                  "{ivector-normalize-length} ark:- ark:- |\" plda", None, scale=True),
            Stage("backend", "ivector-plda-scoring of Vox1-E in its pipe",
                  f"{{ivector-plda-scoring}} --normalize-length=true \"{{ivector-copy-plda}} --smoothing=0.0 plda - |\" "
                  f"\"{xf}\" \"{xf}\" {bd}/trials scores", "scores", "scores", scale=True),
            Stage("backend", "compute-eer of Vox1-E",
                  f"awk 'NR==FNR {{key[$1\" \"$2] = $3; next}} {{print $3, key[$1\" \"$2]}}' {bd}/trials_key scores | "
                  "{compute-eer} - > eer 2>&1", "eer", "eer", scale=True),
            # Our one-process forms, against the Kaldi pipes above (filled in from those rows).
            Stage("backend", "train_backend (mean + LDA + PLDA) vs Kaldi's 3 pipes",
                  f"{{train_backend}} --lda-dim=200 --total-covariance-factor=0.0 scp:{bd}/train.scp "
                  f"ark:{bd}/utt2spk be", "scores", "scores_one", "train", scale=True, kaldi_output="scores",
                  kaldi_from=("ivector-mean", "ivector-compute-lda", "ivector-compute-plda")),
            Stage("backend", "score_plda of Vox1-E vs Kaldi's pipe",
                  f"{{score_plda}} --mean=be/mean.vec --transform=be/transform.mat be/plda scp:{bd}/test.scp "
                  f"scp:{bd}/test.scp {bd}/trials scores_one", "scores+eer", "scores_one", "score", scale=True,
                  kaldi_output="scores", kaldi_from=("ivector-plda-scoring",)),
        ]
    return out


# ---------------------------------------------------------------- report

def best(ms: list[Measure], attr: str) -> float:
    return min(getattr(m, attr) for m in ms)


def cell(ms: list[Measure], attr: str, fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(getattr(m, attr)) for m in ms)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(rows: list[Stage], startup_cpu: dict, pinned: bool, parities: dict) -> list[str]:
    lines = ["| stage | Kaldi wall s | Kaldi CPU s | Kaldi MB | ours wall s | ours CPU s | ours MB "
             "| CPU ours/Kaldi | mem ours/Kaldi | goal | parity |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for st in rows:
        k, o = st.runs["kaldi"], st.runs["ours"]
        ratio = best(o, "cpu") / max(best(k, "cpu"), 1e-9)
        mem = best(o, "rss_mb") / max(best(k, "rss_mb"), 1e-9)
        goal = "—"
        if pinned:
            n_tools = len(re.findall(r"\{[a-z][a-z_-]*\}", st.template))
            if st.goal == "startup":
                goal = f"ours <= {0.3 * n_tools:.1f} s CPU: {verdict(best(o, 'cpu') <= 0.3 * n_tools)}"
            elif st.goal == "tool":
                goal = f"<= 1: {verdict(ratio <= 1.0)}"
                if st.scale:
                    goal += f"; mem <= 1.5: {verdict(mem <= 1.5)}"
            elif st.goal == "train":
                goal = f"<= 0.2: {verdict(ratio <= 0.2)}"
            elif st.goal == "score":
                goal = f"<= 0.1: {verdict(ratio <= 0.1)}"
        lines.append(f"| {st.label} | {cell(k, 'wall')} | {cell(k, 'cpu')} | {cell(k, 'rss_mb', '{:.0f}')} "
                     f"| {cell(o, 'wall')} | {cell(o, 'cpu')} | {cell(o, 'rss_mb', '{:.0f}')} | {ratio:.2f} "
                     f"| {mem:.2f} | {goal} | {parities.get(st.label, '—')} |")
        if st.label in startup_cpu:  # per hour after start-up
            sk, so = startup_cpu[st.label]
            hk = best(k, "cpu") - sk
            ho = best(o, "cpu") - so
            r = ho / max(hk, 1e-9)
            goal = f"<= 0.5: {verdict(r <= 0.5)}" if pinned else "—"
            lines.append(f"| … per hour after start-up (CPU minus the 1-utterance row) | | {hk:.2f} | | | {ho:.2f} | "
                         f"| {r:.2f} | | {goal} | |")
    return lines


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--kaldi-bin", default=str(REF / "bin"), help="folder of Kaldi's binaries (its ../lib is used)")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "sid_vs_kaldi"),
                    help="decoded audio and synthetic vectors, made once and reused")
    ap.add_argument("--work-dir", default="", help="where outputs go (default: a temporary folder, removed)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", default="1,default", help="comma list of 1 (pinned) and default")
    ap.add_argument("--groups", default="startup,features,backend")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--num-train", type=int, default=203_796)
    ap.add_argument("--json", default="", help="also write every measurement to this file")
    args = ap.parse_args()

    kaldi_bin = Path(args.kaldi_bin).resolve()
    why = probe(kaldi_bin)
    if why:
        print(f"vs_kaldi: skipped: {why}")
        return 0
    groups = set(args.groups.split(","))
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "sid")], check=True,
                   env=side_env(kaldi_bin, "1"), stdout=subprocess.DEVNULL)
    wav_scp = one_scp = bd = None
    if groups & {"startup", "features"}:
        if (SHARED / "corpora" / "speechocean762").is_dir():
            wav_scp = audio_hour(cache, args.hours)
            one_scp = cache / "one_utterance.scp"
            one_scp.write_text(wav_scp.read_text().splitlines()[0] + "\n")
        else:
            print(f"vs_kaldi: feature rows skipped: no corpus at {SHARED / 'corpora' / 'speechocean762'}")
    if "startup" in groups and not REF.joinpath("backend").is_dir():
        groups.discard("startup")
        print(f"vs_kaldi: start-up rows skipped: no reference inputs at {REF}")
    if "backend" in groups:
        if (SHARED / "voxceleb" / "trials" / "list_test_all.txt.gz").exists():
            bd = backend_data(cache, args.num_train)
        else:
            print(f"vs_kaldi: back-end rows skipped: no Vox1-E trial list under {SHARED / 'voxceleb' / 'trials'}")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vs_kaldi."))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(), "cores": os.cpu_count(), "kaldi_bin": str(kaldi_bin), "tables": []}
    print(f"# ours vs Kaldi's binaries, {meta['date']}, commit {meta['commit']}, {meta['cores']} cores")
    print(f"Kaldi: {kaldi_bin}; ours: {sys.executable} -m sid.bin.<tool>; {args.runs} runs each, "
          "cells list the runs, ratios use the best run of each side.\n")
    try:
        for threads in args.threads.split(","):
            env = side_env(kaldi_bin, threads)
            rows = stages(groups, wav_scp, one_scp, bd, args.num_train, f"kaldi_{threads}")
            dirs = {side: work / f"{side}_{threads}" for side in ("kaldi", "ours")}
            for d in dirs.values():
                d.mkdir(parents=True, exist_ok=True)
            if bd is not None:
                shutil.copy(bd / "trials_key", work / "trials_key")
            before = load()
            for r in range(args.runs):
                by_name: dict[str, Stage] = {}
                for st in rows:
                    by_name[st.template.split("}", 1)[0].lstrip("{")] = st
                    order = ("kaldi", "ours") if r % 2 == 0 else ("ours", "kaldi")
                    for side in order:
                        if side == "kaldi" and st.kaldi_from:
                            parts = [by_name[n].runs["kaldi"][r] for n in st.kaldi_from]
                            st.runs["kaldi"].append(Measure(sum(p.wall for p in parts), sum(p.cpu for p in parts),
                                                            max(p.rss_mb for p in parts)))
                            continue
                        m = run(expand(st.template, side, kaldi_bin), dirs[side], env)
                        st.runs[side].append(m)
                        print(f"  threads {threads}, run {r + 1}, {side:5s}: {m.wall:7.2f} s wall {m.cpu:7.2f} s CPU "
                              f"{m.rss_mb:6.0f} MB  {st.label}", file=sys.stderr, flush=True)
            after = load()
            parities = {}
            for st in rows:
                if st.parity:
                    try:
                        ok, how = parity(st.parity, dirs["kaldi"], dirs["ours"], st.kaldi_output or st.output,
                                         st.output)
                        parities[st.label] = f"{'agree' if ok else 'DIFFER'}: {how}"
                    except Exception as err:  # a failed comparison must not cost the timings
                        parities[st.label] = f"not checked ({type(err).__name__}: {err})"
                elif not st.kaldi_from:
                    parities[st.label] = "not compared (dithered)" if "dither" in st.label else "via the scores"
            startup_cpu = {}
            one = {st.template.split("}", 1)[0]: st for st in rows if "1 utterance" in st.label}
            for st in rows:
                if st.group == "features" and "compute-fbank" in st.template:
                    s1 = one.get("{compute-fbank-feats")
                    if s1 is not None:
                        startup_cpu[st.label] = (best(s1.runs["kaldi"], "cpu"), best(s1.runs["ours"], "cpu"))
            title = "threads pinned to 1" if threads == "1" else "threads at each side's default"
            print(f"## {title} (load average 1/5/15 min: {before} before, {after} after)\n")
            print("\n".join(table(rows, startup_cpu, threads == "1", parities)))
            print()
            meta["tables"].append({"threads": threads, "load_before": before, "load_after": after, "rows": [
                {"stage": st.label, "parity": parities.get(st.label),
                 **{side: [vars(m) | {"stdout": None} for m in st.runs[side]] for side in ("kaldi", "ours")}}
                for st in rows]})
        # What any Python tool pays before its first line: the floor under the start-up rows.
        env = side_env(kaldi_bin, "1")
        floor = {what: [run(f'{sys.executable} -c "{code}"', work, env) for _ in range(args.runs)]
                 for what, code in (("python -c pass", "pass"), ("python -c 'import numpy'", "import numpy"))}
        print("Interpreter floor (best of the runs): " + "; ".join(
            f"`{what}` {best(ms, 'cpu'):.2f} s CPU, {best(ms, 'rss_mb'):.0f} MB" for what, ms in floor.items()))
        meta["floor"] = {what: [vars(m) | {"stdout": None} for m in ms] for what, ms in floor.items()}
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
