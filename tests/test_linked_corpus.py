"""A corpus assembled from symbolic links (speaker folders linked from the real
speechocean762 tree) goes through the recipe's data preparation and trial
conversion: trial paths are matched as written, never resolved."""

import subprocess

SPEAKERS = ["0001", "0005", "0006", "0008", "0011", "0012"]


def linked_corpus(real, dest):
    (dest / "WAVE").mkdir(parents=True)
    (dest / "train").mkdir()
    for spk in SPEAKERS:
        (dest / "WAVE" / f"SPEAKER{spk}").symlink_to(real / "WAVE" / f"SPEAKER{spk}", target_is_directory=True)
    utt2spk = [line for line in (real / "train/utt2spk").read_text().splitlines() if line.split()[1] in SPEAKERS]
    utts = {line.split()[0] for line in utt2spk}
    (dest / "train/utt2spk").write_text("\n".join(utt2spk) + "\n")
    for name in ("wav.scp", "spk2gender"):
        keep = utts if name == "wav.scp" else set(SPEAKERS)
        lines = [line for line in (real / "train" / name).read_text().splitlines() if line.split()[0] in keep]
        (dest / "train" / name).write_text("\n".join(lines) + "\n")
    return len(utts)


def test_symlinked_speaker_folders(corpus, repo, tmp_path, sid_env):
    num_utts = linked_corpus(corpus, tmp_path / "linked")
    recipe = repo / "egs/speechocean762"
    data = tmp_path / "data"
    run = subprocess.run([str(recipe / "run.sh"), "--corpus", str(tmp_path / "linked"), "--data", str(data),
                          "--exp", str(tmp_path / "exp"), "--num-test-speakers", "2",
                          "--stage", "0", "--stop-stage", "0"],
                         cwd=tmp_path, env=sid_env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    wavs = dict(line.split(None, 1) for line in (data / "test/wav.scp").read_text().splitlines())
    assert len(wavs) + len((data / "train/wav.scp").read_text().splitlines()) == num_utts
    assert all("/linked/WAVE/SPEAKER" in path for path in wavs.values())

    voxceleb = (data / "test/test.voxceleb.txt").read_text().splitlines()
    conv = subprocess.run(["local/convert_trials.py", str(tmp_path / "linked"), str(data / "test"),
                           str(data / "test/test.voxceleb.txt"), str(tmp_path / "trials")],
                          cwd=recipe, env=sid_env, capture_output=True, text=True)
    assert conv.returncode == 0, conv.stderr[-2000:]
    trials = [line.split() for line in (tmp_path / "trials").read_text().splitlines()]
    assert len(trials) == len(voxceleb) > 0
    for (label, p1, p2), (u1, u2, kaldi_label) in zip((line.split() for line in voxceleb), trials):
        assert wavs[u1].endswith("/linked/" + p1) and wavs[u2].endswith("/linked/" + p2)
        assert kaldi_label == {"1": "target", "0": "nontarget"}[label]
