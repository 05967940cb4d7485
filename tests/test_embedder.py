"""sid.Embedder, sid.bin.embed and sid.bin.verify: audio in, the recipe's embedding out.

An exp dir is written through the normal layout (config.yaml with its features record,
final.pt) from a randomly initialised small x-vector; its embeddings of real
speechocean762 utterances must equal those of steps/make_mfcc.sh +
steps/compute_vad_decision.sh + steps/extract_embeddings.sh for the same utterances."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from sid import Embedder, kaldi_io
from sid.config import FeaturesRecord, parse_config
from sid.errors import SidError
from sid.models import build_model
from sid.train import checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from training_data import model_with_moved_norms  # noqa: E402

NUM_UTTS = 4


def write_exp(exp: Path, repo: Path, seed: int = 0, source: str = "features") -> Path:
    """A model dir as training leaves it, from a random x-vector on the recipe's MFCCs, or with
    ``source`` audio on conf/fbank80.conf computed from audio (as data.source: audio records it)."""
    name, dim, cmvn_opts = ("mfcc", 30, "--norm-vars=false --center=true --cmn-window=300") if source == "features" \
        else ("fbank", 80, "")
    conf = (repo / "conf" / f"{name}{'' if name == 'mfcc' else dim}.conf").read_text()
    lines = (line.split("#", 1)[0].strip() for line in conf.splitlines())
    record = FeaturesRecord(type=name, config=conf,
                            checksum=hashlib.md5("".join(f"{x}\n" for x in lines if x).encode()).hexdigest(),
                            cmvn_opts=cmvn_opts, source=source)
    cfg = parse_config({"model": {"type": "xvector", "feat_dim": dim, "channels": 32, "stats_channels": 64,
                                  "embed_dim": 16, "hidden_dim": 16}})
    cfg.features = record
    cfg.num_classes = 10
    exp.mkdir(parents=True, exist_ok=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    model = model_with_moved_norms(cfg.model, seed)
    checkpoint.save_atomic({"model": model.state_dict()}, exp / "final.pt")
    return exp


@pytest.fixture(scope="module")
def utterances(corpus):
    """(utt, absolute path) of a few real utterances of two speakers."""
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    utts = sorted(wav)[:NUM_UTTS]
    return [(u, str(corpus / wav[u])) for u in utts]


@pytest.fixture(scope="module")
def exp(tmp_path_factory, repo):
    return write_exp(tmp_path_factory.mktemp("embedder") / "exp", repo)


def _data_dir(d: Path, utterances) -> Path:
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in utterances))
    (d / "utt2spk").write_text("".join(f"{u} {u}\n" for u, _ in utterances))
    (d / "spk2utt").write_text("".join(f"{u} {u}\n" for u, _ in utterances))
    return d


def test_embeddings_equal_the_recipe_extraction(exp, utterances, repo, sid_env, tmp_path):
    data = _data_dir(tmp_path / "data", utterances)
    out = tmp_path / "emb"
    for cmd in (["steps/make_mfcc.sh", "--nj", "1", "--mfcc-config", "conf/mfcc.conf", str(data),
                 str(tmp_path / "log"), str(tmp_path / "mfcc")],
                ["steps/compute_vad_decision.sh", "--nj", "1", "--vad-config", "conf/vad.conf", str(data),
                 str(tmp_path / "log"), str(tmp_path / "mfcc")],
                ["steps/extract_embeddings.sh", "--nj", "1", str(exp), str(data), str(out)]):
        res = subprocess.run(["bash", *cmd], env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
    keys, recipe = kaldi_io.read_vectors(f"scp:{out}/xvector.scp")
    assert keys == [u for u, _ in utterances]

    e = Embedder.from_exp(exp, device="no")
    for (utt, path), ref in zip(utterances, recipe):
        np.testing.assert_allclose(e.embed_file(path, utt=utt), ref, rtol=0, atol=1e-5)
    # The same samples through embed(), as floats in [-1, 1].
    samples, sr = sf.read(utterances[0][1], dtype="float32")
    np.testing.assert_allclose(e.embed(samples, sr, utt=utterances[0][0]), recipe[0], rtol=0, atol=1e-5)

    # The shell command on the wav.scp: batched, same ids and values.
    res = subprocess.run([sys.executable, "-m", "sid.bin.embed", "--exp", str(exp), "--use-gpu=no",
                          f"scp:{data}/wav.scp", f"ark,scp:{tmp_path}/e.ark,{tmp_path}/e.scp"],
                         env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr
    keys2, ours = kaldi_io.read_vectors(f"scp:{tmp_path}/e.scp")
    assert keys2 == keys
    np.testing.assert_allclose(ours, recipe, rtol=0, atol=1e-5)


def test_embed_single_file_and_verify(exp, utterances, repo, sid_env, tmp_path):
    (u1, p1), (u2, p2) = utterances[:2]
    res = subprocess.run([sys.executable, "-m", "sid.bin.embed", "--exp", str(exp), p1, "ark,t:-"],
                         env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr
    key, *values = res.stdout.replace("[", " ").replace("]", " ").split()
    e = Embedder.from_exp(exp, device="no")
    a, b = e.embed_file(p1), e.embed_file(p2)
    assert key == Path(p1).stem
    np.testing.assert_allclose(np.array(values, dtype=np.float32), a, atol=1e-5)

    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert e.score(a, b) == pytest.approx(cosine, abs=1e-6)
    assert e.score(a, a) == pytest.approx(1.0, abs=1e-6)
    for threshold, decision in ((cosine - 0.01, "accept"), (cosine + 0.01, "reject")):
        res = subprocess.run([sys.executable, "-m", "sid.bin.verify", "--exp", str(exp), f"--threshold={threshold}",
                              p1, p2], env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
        assert res.returncode == 0, res.stderr
        score, word = res.stdout.split()
        assert float(score) == pytest.approx(cosine, abs=1e-5) and word == decision


def test_score_with_a_plda_backend(exp, utterances, tmp_path):
    from sid.backend import pipeline
    from sid.backend.plda import Plda
    from sid.backend.record import Backend

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 16)).astype(np.float32) + np.repeat(rng.standard_normal((6, 16)), 10, 0)
    keys = [f"s{i // 10}-u{i}" for i in range(60)]
    mean, lda, plda = pipeline.train(keys, x.copy(), {k: k.split("-")[0] for k in keys}, lda_dim=8)
    b = tmp_path / "backend_plda"
    b.mkdir()
    kaldi_io.write_object(str(b / "mean.vec"), mean, True)
    kaldi_io.write_object(str(b / "transform.mat"), lda, True)
    plda.write(str(b / "plda"))
    e = Embedder.from_exp(exp, device="no", backend=b)
    # What steps/score_plda.sh computes for the pair.
    y = Plda.read(str(b / "plda")).transform_vectors(pipeline.prepare(x[:2].copy(), mean, lda), 1)[0]
    expect = plda.log_likelihood_ratios(y[:1], np.ones(1), y[1:], np.zeros(1, int), np.zeros(1, int))[0]
    assert e.score(x[0], x[1]) == pytest.approx(expect, rel=1e-6)
    # The same back-end recorded in a model dir (sid.bin.record_backend): no threshold of its own.
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.yaml", "final.pt"):
        (model / name).write_bytes((exp / name).read_bytes())
    Backend("plda", b).write(model)
    e = Embedder.from_exp(model, device="no")
    assert e.backend.kind == "plda" and e.threshold is None
    assert e.score(x[0], x[1]) == pytest.approx(expect, rel=1e-6)


def test_wrong_sample_rate_is_an_error_unless_resampling(exp, utterances, tmp_path, repo, sid_env):
    samples, sr = sf.read(utterances[0][1], dtype="float32")
    path = tmp_path / "at8k.wav"
    sf.write(path, samples[::2], 8000)
    with pytest.raises(SidError, match=f"{path}.*8000 Hz.*16000 Hz"):
        Embedder.from_exp(exp, device="no").embed_file(path)
    emb = Embedder.from_exp(exp, device="no", resample=True).embed_file(path)
    assert emb.shape == (16,) and np.isfinite(emb).all()
    res = subprocess.run([sys.executable, "-m", "sid.bin.verify", "--exp", str(exp), str(path), utterances[0][1]],
                         env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 1 and str(path) in res.stderr and "Traceback" not in res.stderr


def test_exp_without_features_record_is_an_error(exp, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    del cfg["features"]
    (bare / "config.yaml").write_text(yaml.safe_dump(cfg))
    (bare / "final.pt").write_bytes((exp / "final.pt").read_bytes())
    with pytest.raises(SidError, match="no 'features' record"):
        Embedder.from_exp(bare, device="no")


def test_model_trained_from_audio_extracts_as_trained(utterances, repo, sid_env, tmp_path):
    """features.source audio: extraction (the step, the tool, Embedder) gives model(training
    front-end of the whole utterance): fbank from the audio less its mean, no VAD, no dither
    (extract.dither; training dithers as conf/fbank80.conf says)."""
    from sid.data.audio import read_audio
    from sid.train.audio import FbankFrontend, fbank_options

    exp = write_exp(tmp_path / "audio_exp", repo, source="audio")
    data = _data_dir(tmp_path / "data", utterances)   # audio only: no features, no VAD
    out = tmp_path / "emb"
    res = subprocess.run(["bash", "steps/extract_embeddings.sh", "--nj", "2", str(exp), str(data), str(out)],
                         env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    keys, got = kaldi_io.read_vectors(f"scp:{out}/xvector.scp")
    assert keys == [u for u, _ in utterances]

    opts = fbank_options(repo / "conf" / "fbank80.conf")
    assert opts.frame_opts.dither == 1.0
    opts.frame_opts.dither = 0.0
    front = FbankFrontend(opts)   # training's, per-chunk CMN, without its dither
    model = build_model(parse_config(yaml.safe_load((exp / "config.yaml").read_text()), recorded=True).model)
    model.load_state_dict(checkpoint.load(exp / "final.pt")["model"])
    model.eval()
    e = Embedder.from_exp(exp, device="no")
    for (utt, path), emb in zip(utterances, got):
        feats = front(read_audio(path, utt=utt, sample_rate=16000)[0], utt)
        with torch.no_grad():
            direct = model.embed(torch.from_numpy(feats)[None])[0].numpy()
        np.testing.assert_allclose(emb, direct, rtol=0, atol=1e-5)
        np.testing.assert_allclose(e.embed_file(path, utt=utt), direct, rtol=0, atol=1e-5)

    # Features and VAD given to a model trained from audio: an error saying what to give.
    res = subprocess.run([sys.executable, "-m", "sid.bin.extract_embeddings", str(exp), "scp:x", "scp:y", "ark:/dev/null"],
                         env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 1 and "trained from audio" in res.stderr and "Traceback" not in res.stderr


def _run(args, env, cwd):
    res = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert res.returncode == 0, res.stderr
    return res


def test_verify_scores_with_the_exps_recorded_qmf_backend(exp, utterances, repo, sid_env, tmp_path):
    """sid.bin.record_backend points the exp at a cosine + AS-norm + QMF back-end; verify --exp then
    prints what score_cosine, score_norm and apply_qmf give the pair, and the decision at the
    calibrated threshold of the recorded target prior."""
    from sid.backend.qmf import QMF, bayes_threshold
    from sid.data.audio import audio_duration

    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.yaml", "final.pt"):
        (model / name).write_bytes((exp / name).read_bytes())
    (u1, p1), (u2, p2) = utterances[0], utterances[2]
    e = Embedder.from_exp(model, device="no")
    assert e.backend is None and e.threshold is None
    emb = {u1: e.embed_file(p1, u1), u2: e.embed_file(p2, u2)}
    rng = np.random.default_rng(1)
    b = tmp_path / "scores" / "backend_cosine"
    b.mkdir(parents=True)
    kaldi_io.write_object(str(b / "mean.vec"), rng.standard_normal(16).astype(np.float32) * 0.1, True)
    cohort = {f"spk{i}": rng.standard_normal(16).astype(np.float32) for i in range(12)}
    with kaldi_io.TableWriter(f"ark,scp:{tmp_path}/cohort.ark,{tmp_path}/cohort.scp") as w:
        for k, v in cohort.items():
            w.write(k, v)
    with kaldi_io.TableWriter(f"ark,scp:{tmp_path}/emb.ark,{tmp_path}/emb.scp") as w:
        for k in sorted(emb):
            w.write(k, emb[k])
    (tmp_path / "utt2dur").write_text(f"{u1} {audio_duration(p1)}\n{u2} {audio_duration(p2)}\n")
    (tmp_path / "trials").write_text(f"{u1} {u2}\n")
    s = str(tmp_path)

    def recipe_score() -> float:
        _run(["sid.bin.score_cosine", f"--mean={b}/mean.vec", f"scp:{s}/emb.scp", f"scp:{s}/emb.scp",
              f"{s}/trials", f"{s}/cos"], sid_env, repo)
        _run(["sid.bin.score_norm", "--method=asnorm", "--top-n=5", f"--mean={b}/mean.vec", "--normalize-input=true",
              f"scp:{s}/cohort.scp", f"scp:{s}/emb.scp", f"scp:{s}/emb.scp", f"{s}/cos", f"{s}/asnorm"], sid_env, repo)
        _run(["sid.bin.apply_qmf", f"--mean={b}/mean.vec", "--p-targets=0.01,0.05", f"--threshold-out={s}/qmf.threshold",
              f"{b}/qmf.json", f"{s}/utt2dur", f"scp:{s}/cohort.scp", f"scp:{s}/emb.scp", f"{s}/asnorm", f"{s}/qmf"],
             sid_env, repo)
        return float((tmp_path / "qmf").read_text().split()[2])

    weights = [2.0, 0.3, 0.2, -1.0, -1.0]
    QMF(weights, 0.0, 5).save(b / "qmf.json")
    # The bias puts the pair's calibrated score between the thresholds of p-target 0.05 and 0.01.
    middle = (bayes_threshold(0.05) + bayes_threshold(0.01)) / 2
    QMF(weights, middle - recipe_score(), 5).save(b / "qmf.json")
    expected = recipe_score()
    assert bayes_threshold(0.05) < expected < bayes_threshold(0.01)
    for p_target, decision in ((0.05, "accept"), (0.01, "reject")):
        _run(["sid.bin.record_backend", f"--cohort={s}/cohort.scp", f"--threshold-file={s}/qmf.threshold",
              f"--p-target={p_target}", str(model), str(b)], sid_env, repo)
        record = yaml.safe_load((model / "backend.yaml").read_text())
        assert record["kind"] == "cosine_asnorm_qmf" and not Path(record["dir"]).is_absolute()
        res = _run(["sid.bin.verify", "--exp", str(model), p1, p2], sid_env, repo)
        score, word = res.stdout.split()
        assert float(score) == pytest.approx(expected, abs=1e-4) and word == decision
        assert Embedder.from_exp(model, device="no").threshold == pytest.approx(bayes_threshold(p_target), abs=1e-6)
    e = Embedder.from_exp(model, device="no")
    assert e.score_files(p1, p2) == pytest.approx(expected, abs=1e-4)
    with pytest.raises(SidError, match="needs both durations"):
        e.score(emb[u1], emb[u2])
    (model / "backend.yaml").write_text("kind: plda\ndir: nowhere\n")
    with pytest.raises(SidError, match="backend.yaml.*nowhere/mean.vec not found"):
        Embedder.from_exp(model, device="no")


def test_embedder_decides_vad_as_the_exp_records(utterances, repo, sid_env, tmp_path):
    """An exp recording its VAD (features.vad: run.sh's fbank, VAD decided on MFCCs beside them,
    here with a VAD config other than conf/vad.conf) embeds audio as the recipe's steps do, with
    no VAD config given: the exp is the one home of its settings."""
    from sid import provenance

    vad_conf = tmp_path / "vad.conf"
    vad_conf.write_text((repo / "conf/vad.conf").read_text() + "--vad-energy-threshold=7.0\n")
    data = _data_dir(tmp_path / "data", utterances)
    side = tmp_path / "data_vad_mfcc"
    for cmd in (["steps/make_fbank.sh", "--nj", "1", "--fbank-config", "conf/fbank80.conf", data, tmp_path / "log",
                 tmp_path / "fbank"],
                ["utils/copy_data_dir.sh", data, side],
                ["steps/make_mfcc.sh", "--nj", "1", "--mfcc-config", "conf/mfcc.conf", side, tmp_path / "log",
                 tmp_path / "mfcc"],
                ["steps/compute_vad_decision.sh", "--nj", "1", "--vad-config", vad_conf, side, tmp_path / "log",
                 tmp_path / "mfcc"],
                ["cp", side / "vad.scp", data / "vad.scp"],
                [sys.executable, "-m", "sid.bin.feature_record", "copy-vad", side, data]):
        res = subprocess.run(list(map(str, cmd)), env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
    # The exp as training on this data dir (its CMN'd copy) records it.
    (data / "cmvn_opts").write_text("--norm-vars=false --center=true --cmn-window=300\n")
    record = provenance.training_record(data)
    assert record.vad.features_type == "mfcc" and "--vad-energy-threshold=7.0" in record.vad.config
    exp = write_exp(tmp_path / "exp", repo)
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    cfg["model"]["feat_dim"] = 80
    cfg["features"] = dataclasses.asdict(record)
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    torch.manual_seed(0)
    checkpoint.save_atomic({"model": build_model(parse_config(cfg, recorded=True).model).state_dict()}, exp / "final.pt")
    out = tmp_path / "emb"
    res = subprocess.run(["bash", "steps/extract_embeddings.sh", "--nj", "1", str(exp), str(data), str(out)],
                         env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    keys, recipe = kaldi_io.read_vectors(f"scp:{out}/xvector.scp")

    e = Embedder.from_exp(exp, device="no")
    assert e.vad_opts.vad_energy_threshold == 7.0
    for (utt, path), ref in zip(utterances, recipe):
        np.testing.assert_allclose(e.embed_file(path, utt=utt), ref, rtol=0, atol=1e-5)
    with pytest.raises(SidError, match="records the model's VAD"):
        Embedder.from_exp(exp, device="no", vad_config=repo / "conf/vad.conf")
