"""sid.cli.progress: a live bar on a terminal; whole lines, no carriage returns, in a log."""

import io
import subprocess
import sys

from sid.cli import progress


def test_log_gets_whole_lines_per_interval():
    out = io.StringIO()
    bar = progress(range(50), desc="work", unit="utt", file=out, interval=0.0)
    for _ in bar:
        bar.set_postfix(loss="1.5")
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 52 and all(line.startswith("work: ") for line in lines)
    assert lines[0].startswith("work:   0% 0/50 [0:00") and lines[-1].startswith("work: 100% 50/50 [")
    assert lines[-1].endswith("utt/s, loss=1.5]")


def test_log_with_unknown_total_manual_updates_and_a_long_interval():
    out = io.StringIO()
    bar = progress(desc="feats", unit="file", file=out)
    for _ in range(5):
        bar.update()
    bar.close()
    bar.close()
    # A line at the start and one at the end; nothing in between (30 s interval).
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("feats: 5 [0:00, ")
    out = io.StringIO()
    assert list(progress(iter(range(3)), desc="x", file=out, disable=True)) == [0, 1, 2] and out.getvalue() == ""


def test_a_job_log_has_no_carriage_returns(tmp_path, sid_env, repo):
    """A tool writing to a log file: feature computation shows its progress there, line by line."""
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
