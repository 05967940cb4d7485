"""Parity with Kaldi's own binaries: each command of ../shared/reference/kaldi/README.md
(features part), with the binary's name changed, run through subprocess on the same
inputs. Features within 2e-3 absolute or 1e-4 relative (the looser), VAD identical,
same utterances and frame counts."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
FEATURE_FILES = ["fbank80.txt", "mfcc30.txt", "vad.txt", "mfcc30_cmn_voiced.txt", "fbank80_cmn.txt"]


@pytest.fixture(scope="module")
def outputs(kaldi_ref, tmp_path_factory):
    """Our outputs, made in a copy of the reference folder (wav.scp paths are relative to it)."""
    ref = kaldi_ref / "features"
    work = tmp_path_factory.mktemp("parity")
    for item in ["wav", "wav.scp", "fbank80.conf", "mfcc30.conf", "vad.conf"]:
        src = ref / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / item)
    # Inputs of the later commands are Kaldi's own outputs, as in the README.
    for f in ["fbank80.txt", "mfcc30.txt", "vad.txt"]:
        shutil.copy(ref / f, work / f"kaldi_{f}")
    py = f"{sys.executable} -m sid.bin."
    commands = [
        f"{py}compute_fbank_feats --config=fbank80.conf scp:wav.scp ark,t:fbank80.txt",
        f"{py}compute_mfcc_feats --config=mfcc30.conf scp:wav.scp ark,t:mfcc30.txt",
        f"{py}compute_vad --config=vad.conf ark,t:kaldi_mfcc30.txt ark,t:vad.txt",
        f"{py}apply_cmvn_sliding --norm-vars=false --center=true --cmn-window=300 ark,t:kaldi_mfcc30.txt ark:- | "
        f"{py}select_voiced_frames ark:- ark,t:kaldi_vad.txt ark,t:mfcc30_cmn_voiced.txt",
        f"{py}apply_cmvn_sliding --norm-vars=false --center=true --cmn-window=300 ark,t:kaldi_fbank80.txt "
        f"ark,t:fbank80_cmn.txt",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C")
    for cmd in commands:
        r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=work, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd}\n{r.stderr}"
    return work


def test_every_reference_file_is_covered(kaldi_ref):
    assert sorted(p.name for p in (kaldi_ref / "features").glob("*.txt")) == sorted(FEATURE_FILES)


@pytest.mark.parametrize("name", FEATURE_FILES)
def test_matches_kaldi(name, kaldi_ref, outputs):
    ref = dict(kaldiio.load_ark(str(kaldi_ref / "features" / name)))
    ours = dict(kaldiio.load_ark(str(outputs / name)))
    assert list(ours) == list(ref)
    for utt, want in ref.items():
        got = ours[utt]
        assert got.shape == want.shape, (utt, got.shape, want.shape)
        if name == "vad.txt":
            np.testing.assert_array_equal(got, want, err_msg=utt)
        else:
            # Looser of 2e-3 absolute and 1e-4 relative, element by element.
            tol = np.maximum(2e-3, 1e-4 * np.abs(want))
            bad = np.abs(got - want) > tol
            assert not bad.any(), f"{utt}: {bad.sum()} values differ, max {np.abs(got - want).max()}"
