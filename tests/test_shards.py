"""Tar shards (sid.data.shards, sid.bin.make_shards): every utterance, label and duration of a
data dir comes back (audio and features), WebDataset grouping works, parallel jobs and reruns
resume, and training from shards sees each utterance the planned number of times per epoch."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import yaml

from sid.data.shards import escape_key, read_index, shuffle_buffer, write_shards
from sid.data.table import read_dict
from sid.errors import SidError
from sid.train.audio import AudioReader, AudioSpan, fbank_options, read_audio_training_set
from sid.train.data import ChunkDataset, plan_epoch, read_training_set

sys.path.insert(0, str(Path(__file__).parent))
from training_data import audio_data_dir  # noqa: E402


@pytest.fixture(scope="module")
def audio_data(corpus, tmp_path_factory):
    return audio_data_dir(corpus, tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="module")
def audio_shards(audio_data, tmp_path_factory, repo, ):
    out = tmp_path_factory.mktemp("shards") / "train"
    env = {"PYTHONPATH": str(repo), "PATH": f"{repo / 'utils'}:{repo / '.venv' / 'bin'}:/usr/bin:/bin", "LC_ALL": "C"}
    r = subprocess.run(["bash", str(repo / "steps" / "make_shards.sh"), "--nj", "2", "--utts-per-shard", "7",
                        str(audio_data["train"]), str(out)], env=env, capture_output=True, text=True, cwd=repo)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out


def test_audio_shards_round_trip(audio_data, audio_shards):
    src = audio_data["train"]
    wav, utt2spk, durs = (read_dict(src / n) for n in ("wav.scp", "utt2spk", "utt2dur"))
    shards = (audio_shards / "shard.list").read_text().split()
    assert len(shards) == -(-len(wav) // 7)
    seen = {}
    for path in shards:
        with tarfile.open(path) as tar:
            groups = {}
            for m in tar.getmembers():   # WebDataset's grouping: the name up to its first dot
                key, _, ext = m.name.partition(".")
                groups.setdefault(key, {})[ext] = tar.extractfile(m).read()
        for key, g in groups.items():
            utt = g["utt"].decode()
            assert key == escape_key(utt) and g["spk"].decode() == utt2spk[utt]
            ext = Path(wav[utt]).suffix[1:]
            assert g[ext] == Path(wav[utt]).read_bytes()
            assert abs(float(g["dur"]) - float(durs[utt])) < 2e-3
            seen[utt] = path
    assert set(seen) == set(wav)
    assert read_dict(audio_shards / "utt2spk") == utt2spk
    # Reading through the index by seeking gives the samples of the loose files.
    members = read_index(audio_shards)
    loose = AudioReader({u: AudioSpan(p) for u, p in wav.items()}, 16000)
    packed = AudioReader({u: AudioSpan(m.path, member=m) for u, m in members.items()}, 16000)
    for utt in sorted(wav)[:6]:
        assert np.array_equal(packed.read(utt, 3000, 9000), loose.read(utt, 3000, 9000))


def test_segments_and_rerun(audio_data, tmp_path):
    src = audio_data["train"]
    wav = read_dict(src / "wav.scp")
    rec = sorted(wav)[0]
    d = tmp_path / "seg"
    d.mkdir()
    (d / "wav.scp").write_text(f"{rec} {wav[rec]}\n")
    (d / "segments").write_text(f"{rec}-a {rec} 0.25 1.0\n{rec}-b {rec} 1.0 1.5\n")
    (d / "utt2spk").write_text(f"{rec}-a s\n{rec}-b s\n")
    out = tmp_path / "shards"
    write_shards(d, out, utts_per_shard=1, progress=False)
    full = sf.read(wav[rec], dtype="float32")[0] * 32768
    members = read_index(out)
    reader = AudioReader({u: AudioSpan(m.path, member=m) for u, m in members.items()}, 16000)
    assert members[f"{rec}-a"].name.endswith(".flac")
    assert np.array_equal(reader.read(f"{rec}-a", 0, 12000), full[4000:16000])
    assert np.array_equal(reader.read(f"{rec}-b", 0, 8000), full[16000:24000])
    # A rerun keeps the complete shards; another split into the same dir is refused.
    before = {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    assert write_shards(d, out, utts_per_shard=1, progress=False) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == before
    with pytest.raises(SidError, match="shards of something else"):
        write_shards(d, out, utts_per_shard=2, progress=False)


def test_feature_shards_round_trip_and_training_set(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "feats"
    d.mkdir()
    feats = {f"spk{s}-u.{i}": rng.standard_normal((50 + 7 * i, 5)).astype(np.float32) for s in range(3) for i in range(4)}
    kaldiio.save_ark(str(d / "feats.ark"), feats, scp=str(d / "feats.scp"))
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in sorted(feats)))
    (d / "utt2num_frames").write_text("".join(f"{u} {len(feats[u])}\n" for u in sorted(feats)))
    write_shards(d, tmp_path / "sh", utts_per_shard=5, progress=False)
    data = read_training_set(tmp_path / "sh")
    flat = read_training_set(d)
    assert data.utts == flat.utts and np.array_equal(data.labels, flat.labels)
    assert np.array_equal(data.lengths, flat.lengths)
    ds = ChunkDataset(data, 0)
    for utt, mat in feats.items():
        assert np.array_equal(ds.reader[utt], mat)
    assert sorted(np.concatenate(data.shards).tolist()) == list(range(len(feats)))


def test_shard_plan_covers_every_utterance_and_streams(audio_data, audio_shards):
    opts = fbank_options(audio_data["conf"]).frame_opts
    data = read_audio_training_set(audio_shards, opts)
    n = len(data.utts)
    for epoch in range(3):
        batches = plan_epoch(data, 5, epoch, 8, 100, 200, chunks_per_utt=2, shuffle_buffer=10)
        assert len(batches) == 2 * n // 8
        counts = np.bincount(np.concatenate([b.utt_index for b in batches]), minlength=n)
        assert counts.tolist() == [2] * n
    # The shuffle buffer only looks ahead its size: item k of the output entered at stream position < k + size.
    stream = np.arange(100)
    out = shuffle_buffer(stream, 10, np.random.default_rng(0))
    assert sorted(out.tolist()) == list(range(100))
    assert all(out[k] < k + 10 for k in range(90)) and not np.array_equal(out, stream)


@pytest.mark.slow
def test_training_from_shards_sees_the_plan(audio_data, audio_shards, repo, sid_env, tmp_path):
    cfg = yaml.safe_load((repo / "conf" / "xvector_small.yaml").read_text())
    cfg["model"].update(channels=32, stats_channels=64, embed_dim=16, hidden_dim=16)
    cfg["data"].update(source="audio", batch_size=8, min_frames=100, max_frames=120, chunks_per_utt=1,
                       shuffle_buffer=10)
    cfg["training"].update(epochs=1, num_avg=1)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "exp"
    r = subprocess.run([sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={path}", "--progress=false",
                        "--tensorboard=false", f"--fbank-config={audio_data['conf']}", "--num-workers=1",
                        "--write-chunk-lists=true", str(audio_shards), str(exp)],
                       env={**sid_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, cwd=repo, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    chunks = [line.split()[1] for line in (exp / "log/chunks/epoch1.rank0.txt").read_text().splitlines()]
    assert sorted(chunks) == sorted(read_dict(audio_shards / "utt2spk"))
    assert (exp / "final.pt").is_file()
