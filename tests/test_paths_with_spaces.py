"""Data dirs whose path holds a space: the utils/ data-dir tools and sid.bin tools take
them; the steps/ scripts (like Kaldi's) stop at once with a message naming the path,
and work when the directory is reached through a link without spaces."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

SR = 16000


@pytest.fixture()
def spaced(tmp_path):
    data = tmp_path / "my data" / "test"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    utts = [f"spk{s}-utt{u}" for s in range(3) for u in range(2)]
    for utt in utts:
        sf.write(tmp_path / "my data" / f"{utt}.wav", (rng.normal(size=SR) * 3000).astype(np.int16), SR)
    (data / "wav.scp").write_text("".join(f"{u} {tmp_path / 'my data' / u}.wav\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    return tmp_path, data


def sh(cmd, cwd, env):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def test_data_tools_take_paths_with_spaces(spaced, sid_env, repo):
    tmp, data = spaced
    for cmd in (["utils/utt2spk_to_spk2utt.pl", f"{data}/utt2spk"],):
        out = sh([str(repo / cmd[0])] + cmd[1:], tmp, sid_env)
        assert out.returncode == 0, out.stderr
        (data / "spk2utt").write_text(out.stdout)
    for cmd in (["utils/validate_data_dir.sh", "--no-feats", "my data/test"],
                ["utils/fix_data_dir.sh", "my data/test"],
                ["utils/split_data.sh", "my data/test", "2"],
                ["utils/subset_data_dir.sh", "my data/test", "2", "my data/sub"]):
        out = sh([str(repo / cmd[0])] + cmd[1:], tmp, sid_env)
        assert out.returncode == 0, (cmd, out.stderr)
    parts = [len((tmp / f"my data/test/split2/{n}/utt2spk").read_text().splitlines()) for n in (1, 2)]
    assert sum(parts) == 6 and min(parts) > 0
    out = sh([sys.executable, "-m", "sid.bin.compute_fbank_feats", "scp:my data/test/wav.scp",
              "ark,scp:my data/f.ark,my data/f.scp"], tmp, sid_env)
    assert out.returncode == 0, out.stderr
    out = sh([sys.executable, "-m", "sid.bin.copy_feats", "scp:my data/f.scp", "ark,t:-"], tmp, sid_env)
    assert out.returncode == 0 and out.stdout.count("[") == 6, out.stderr


def test_steps_stop_naming_the_path(spaced, sid_env, repo):
    tmp, data = spaced
    out = sh([str(repo / "steps/make_fbank.sh"), "--nj", "1", "my data/test"], tmp, sid_env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "'my data/test': the steps scripts do not support paths with whitespace" in out.stderr
    assert sorted(p.name for p in data.iterdir()) == ["utt2spk", "wav.scp"]  # nothing touched
    # A relative path under a current directory with a space.
    out = sh([str(repo / "steps/make_fbank.sh"), "--nj", "1", "test"], tmp / "my data", sid_env)
    assert out.returncode == 1
    assert f"'test' (in the current directory '{tmp / 'my data'}')" in out.stderr
    # Through a link without spaces it works (run from a recipe folder, as steps are).
    (tmp / "mydata").symlink_to(tmp / "my data")
    for d in ("utils", "steps"):
        (tmp / d).symlink_to(repo / d)
    out = sh([str(repo / "utils/utt2spk_to_spk2utt.pl"), "mydata/test/utt2spk"], tmp, sid_env)
    (data / "spk2utt").write_text(out.stdout)
    out = sh([str(repo / "steps/make_fbank.sh"), "--nj", "2", "--fbank-config", str(repo / "conf/fbank80.conf"),
              "mydata/test"], tmp, sid_env)
    assert out.returncode == 0, out.stderr
    assert len((data / "feats.scp").read_text().splitlines()) == 6
