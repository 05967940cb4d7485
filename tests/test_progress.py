"""sid.progress: a live bar on a terminal; whole lines, no carriage returns, in a log."""

import io
import subprocess
import sys

from sid.progress import progress


def test_log_gets_whole_lines_per_interval():
    out = io.StringIO()
    for _ in progress(range(50), desc="work", unit="utt", file=out, interval=0.0):
        pass
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) > 2 and all(line.startswith("work: ") for line in lines)
    assert lines[-1].startswith("work: 100% 50/50 [")


def test_log_with_unknown_total_and_a_long_interval():
    out = io.StringIO()
    for _ in progress(iter(range(5)), desc="feats", unit="utt", file=out):
        pass
    # The first line at the start and one at the end; nothing in between (30 s interval).
    assert out.getvalue().splitlines()[-1].startswith("feats: 5 [") and len(out.getvalue().splitlines()) == 2


def test_a_job_log_has_no_carriage_returns(tmp_path, sid_env, repo):
    """A tool writing to a log file: feature extraction shows progress there, line by line."""
    import numpy as np
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(wav, (np.sin(np.arange(16000) / 5) * 3000).astype(np.int16), 16000, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text(f"u1 {wav}\nu2 {wav}\n")
    with open(tmp_path / "log", "w") as log:
        subprocess.run([sys.executable, "-m", "sid.bin.compute_mfcc_feats", f"scp:{tmp_path / 'wav.scp'}",
                        f"ark:{tmp_path / 'f.ark'}"], stderr=log, env=sid_env, cwd=repo, check=True)
    text = (tmp_path / "log").read_text()
    assert "\r" not in text and "compute_mfcc_feats: 2 [" in text
