"""sid.bin.import_model: checkpoints of other toolkits, built here from their published
parameter names and shapes with random weights, must give the embeddings of a reference
forward pass written in this file from the published architecture; a corrupted or
mismatched checkpoint is an error naming the key; Resemblyzer's real model must give
Resemblyzer's own embeddings of real utterances."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sid.errors import SidError
from sid.extract import load_model_dir
from sid.pretrained import import_checkpoint

CPU = torch.device("cpu")


def save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def imported(tmp_path, fmt, ckpt, config=None):
    exp = tmp_path / f"exp_{fmt}"
    import_checkpoint(fmt, ckpt, config, exp)
    model, cfg = load_model_dir(exp, CPU)
    return model, cfg


# -- reference pieces, from the papers / PyTorch's documented layouts -------------------------------
def ref_lstm(x: torch.Tensor, w: dict, prefix: str, layers: int) -> torch.Tensor:
    """A stacked LSTM step by step: gates (input, forget, cell, output) stacked in the weight
    rows in that order, as PyTorch's nn.LSTM stores them."""
    for layer in range(layers):
        wi, wh = w[f"{prefix}.weight_ih_l{layer}"], w[f"{prefix}.weight_hh_l{layer}"]
        b = w[f"{prefix}.bias_ih_l{layer}"] + w[f"{prefix}.bias_hh_l{layer}"]
        hidden = wh.shape[1]
        h = torch.zeros(x.shape[0], hidden, dtype=torch.float64)
        c = torch.zeros_like(h)
        outs = []
        for t in range(x.shape[1]):
            g = x[:, t] @ wi.T + h @ wh.T + b
            i, f, cand, o = g.split(hidden, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs, dim=1)
    return x


# -- Resemblyzer --------------------------------------------------------------------------------------
def resemblyzer_state(seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for layer in range(3):
        state[f"lstm.weight_ih_l{layer}"] = torch.randn(1024, 40 if layer == 0 else 256, generator=g) * 0.1
        state[f"lstm.weight_hh_l{layer}"] = torch.randn(1024, 256, generator=g) * 0.1
        state[f"lstm.bias_ih_l{layer}"] = torch.randn(1024, generator=g) * 0.1
        state[f"lstm.bias_hh_l{layer}"] = torch.randn(1024, generator=g) * 0.1
    state["linear.weight"] = torch.randn(256, 256, generator=g) * 0.1
    state["linear.bias"] = torch.randn(256, generator=g) * 0.1
    state["similarity_weight"] = torch.tensor([10.0])
    state["similarity_bias"] = torch.tensor([-5.0])
    return state


def test_resemblyzer_random_weights_equal_reference(tmp_path):
    state = resemblyzer_state()
    model, cfg = imported(tmp_path, "resemblyzer", save({"step": 1, "model_state": state}, tmp_path / "p.pt"))
    assert cfg.frontend.type == "resemblyzer" and cfg.features.cmvn_opts == "none"
    assert (cfg.extract.chunking, cfg.extract.window_frames, cfg.extract.window_shift) == ("windows", 160, 77)
    x = torch.rand(3, 50, 40)
    w = {k: v.double() for k, v in state.items()}
    # GE2E d-vector: the last layer's last output, ReLU(linear), L2-normalised.
    h = ref_lstm(x.double(), w, "lstm", 3)[:, -1]
    ref = torch.relu(h @ w["linear.weight"].T + w["linear.bias"])
    ref = ref / ref.norm(dim=1, keepdim=True)
    with torch.no_grad():
        ours = model.embed(x)
    assert torch.allclose(ours.double(), ref, atol=1e-5)


@pytest.mark.parametrize("change, key", [
    (lambda s: s.update({"lstm.weight_ih_l3": torch.zeros(1024, 256)}), "unknown key 'lstm.weight_ih_l3'"),
    (lambda s: s.pop("linear.bias"), "missing key 'linear.bias'"),
    (lambda s: s.update({"linear.weight": torch.zeros(128, 256)}), "'linear.weight' has shape [128, 256]"),
])
def test_mismatched_checkpoint_names_the_key(tmp_path, change, key):
    state = resemblyzer_state()
    change(state)
    with pytest.raises(SidError, match=key.replace("[", r"\[").replace("]", r"\]")):
        import_checkpoint("resemblyzer", save({"model_state": state}, tmp_path / "p.pt"), None, tmp_path / "exp")
    assert not (tmp_path / "exp" / "final.pt").exists()


def test_corrupted_checkpoint_is_an_error_without_traceback(tmp_path, sid_env):
    bad = tmp_path / "p.pt"
    bad.write_bytes(b"not a checkpoint")
    res = subprocess.run([sys.executable, "-m", "sid.bin.import_model", "--format", "resemblyzer", str(bad),
                          str(tmp_path / "exp")], capture_output=True, text=True, env=sid_env)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"cannot load checkpoint {bad}" in res.stderr
    assert not (tmp_path / "exp").exists()


def test_resemblyzer_mel_equals_librosa():
    librosa = pytest.importorskip("librosa", reason="librosa is in the test extras (pip install -e .[test])")
    from sid.features.frontends import ResemblyzerMel

    rng = np.random.default_rng(0)
    wav = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40).T
    ours = ResemblyzerMel()(torch.from_numpy(wav * 32768)[None])[0].numpy()
    assert ours.shape == ref.shape
    assert np.allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())


# -- Resemblyzer's real model against Resemblyzer itself -----------------------------------------------
NUM_PARITY_UTTS = 20


def test_resemblyzer_parity_on_real_utterances(tmp_path, corpus, request):
    """Our embeddings (import, front-end, partials, the Embedder) equal Resemblyzer's own
    embed_utterance(preprocess_wav(...)) of the same samples, per file."""
    from sid import Embedder
    from sid.data.audio import read_audio
    from sid.pretrained import resemblyzer_weights

    weights = resemblyzer_weights(install=True)
    from resemblyzer import VoiceEncoder, preprocess_wav

    import_checkpoint("resemblyzer", weights, None, tmp_path / "exp")
    ours = Embedder.from_exp(tmp_path / "exp", device="no")
    theirs = VoiceEncoder("cpu", verbose=False)
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a recurrent net of batch 1-3: more threads only wait on each other
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    # Utterances of several speakers, short and long.
    utts = sorted(wav)[::max(1, len(wav) // NUM_PARITY_UTTS)][:NUM_PARITY_UTTS]
    assert len(utts) == NUM_PARITY_UTTS
    for utt in utts:
        samples, sr = read_audio(str(corpus / wav[utt]))
        ref = theirs.embed_utterance(preprocess_wav(np.asarray(samples, dtype=np.float32) / 32768))
        emb = ours.embed_file(str(corpus / wav[utt]), utt)
        assert float(emb @ ref) / (np.linalg.norm(emb) * np.linalg.norm(ref)) >= 0.999, utt


# -- WeSpeaker ResNet34 ---------------------------------------------------------------------------------
def bn_params(state: dict, name: str, n: int, g: torch.Generator) -> None:
    state[f"{name}.weight"] = 1 + 0.1 * torch.randn(n, generator=g)
    state[f"{name}.bias"] = 0.1 * torch.randn(n, generator=g)
    state[f"{name}.running_mean"] = 0.1 * torch.randn(n, generator=g)
    state[f"{name}.running_var"] = 0.5 + torch.rand(n, generator=g)
    state[f"{name}.num_batches_tracked"] = torch.tensor(100)


def wespeaker_resnet34_state(feat_dim=80, embed_dim=256, m=32, seed=0, blocks=(3, 4, 6, 3)) -> dict:
    """The keys and shapes of WeSpeaker's ResNet34 (conv1/bn1, layer1-4 of BasicBlocks,
    seg_1, the AAM head's projection.weight); ``blocks`` (2, 2, 2, 2): its ResNet18."""
    g = torch.Generator().manual_seed(seed)
    s = {"conv1.weight": torch.randn(m, 1, 3, 3, generator=g) * 0.3}
    bn_params(s, "bn1", m, g)
    cin = m
    for stage, n in enumerate(blocks, 1):
        cout = m * 2 ** (stage - 1)
        for j in range(n):
            p = f"layer{stage}.{j}"
            s[f"{p}.conv1.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
            bn_params(s, f"{p}.bn1", cout, g)
            s[f"{p}.conv2.weight"] = torch.randn(cout, cout, 3, 3, generator=g) * (2 / (9 * cout)) ** 0.5
            bn_params(s, f"{p}.bn2", cout, g)
            if cin != cout:
                s[f"{p}.shortcut.0.weight"] = torch.randn(cout, cin, 1, 1, generator=g) * (2 / cin) ** 0.5
                bn_params(s, f"{p}.shortcut.1", cout, g)
            cin = cout
    stats = 2 * (feat_dim // 8) * m * 8
    s["seg_1.weight"] = torch.randn(embed_dim, stats, generator=g) / stats ** 0.5
    s["seg_1.bias"] = 0.1 * torch.randn(embed_dim, generator=g)
    s["projection.weight"] = torch.randn(1211, embed_dim, generator=g)
    return s


def ref_wespeaker_resnet(w: dict, feats: torch.Tensor) -> torch.Tensor:
    """WeSpeaker's ResNet forward: (B, T, F) -> seg_1 output."""
    F = torch.nn.functional

    def bn(x, p):
        return F.batch_norm(x, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"], w[f"{p}.bias"],
                            False, 0.0, 1e-5)

    x = feats.transpose(1, 2).unsqueeze(1)
    x = F.relu(bn(F.conv2d(x, w["conv1.weight"], padding=1), "bn1"))
    for stage, n in enumerate((3, 4, 6, 3), 1):
        for j in range(n):
            p = f"layer{stage}.{j}"
            stride = 2 if (j == 0 and stage > 1) else 1
            out = F.relu(bn(F.conv2d(x, w[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, w[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            short = x if f"{p}.shortcut.0.weight" not in w else bn(
                F.conv2d(x, w[f"{p}.shortcut.0.weight"], stride=stride), f"{p}.shortcut.1")
            x = F.relu(out + short)
    x = x.flatten(1, 2)                                   # (B, C*F, T)
    stats = torch.cat([x.mean(-1), torch.sqrt(x.var(-1) + 1e-8)], dim=1)
    return stats @ w["seg_1.weight"].T + w["seg_1.bias"]


def test_wespeaker_resnet34_random_weights_equal_reference(tmp_path):
    state = wespeaker_resnet34_state()
    conf = tmp_path / "config.yaml"
    conf.write_text("model: ResNet34\nmodel_args:\n  feat_dim: 80\n  embed_dim: 256\n  pooling_func: TSTP\n"
                    "  two_emb_layer: false\ndataset_args:\n  fbank_args:\n    num_mel_bins: 80\n    frame_shift: 10\n"
                    "    frame_length: 25\n    dither: 1.0\n")
    model, cfg = imported(tmp_path, "wespeaker", save(state, tmp_path / "avg_model.pt"), conf)
    assert cfg.features.type == "fbank" and "--window-type=hamming" in cfg.features.config
    assert "--dither=0" in cfg.features.config and "--snip-edges=true" in cfg.features.config
    feats = torch.randn(2, 40, 80)
    with torch.no_grad():
        ours = model.embed(feats)
    ref = ref_wespeaker_resnet({k: v.double() if v.is_floating_point() else v for k, v in state.items()},
                               feats.double())
    assert torch.allclose(ours.double(), ref, atol=1e-4 * ref.abs().max())


# -- voxceleb_trainer ResNetSE34L / V2 -----------------------------------------------------------------
def vt_state(variant: str, n_mels: int, n_out=512, seed=0, preemphasis=True) -> dict:
    """SpeakerNet's keys: __S__. the network (ResNetSE34L/V2 with SEBasicBlocks), __L__. the
    loss, __S__.torchfb the front-end's buffers."""
    g = torch.Generator().manual_seed(seed)
    nf = [16, 32, 64, 128] if variant == "L" else [32, 64, 128, 256]
    s = {}
    if variant == "L":
        s["conv1.weight"] = torch.randn(nf[0], 1, 7, 7, generator=g) * 0.2
    else:
        s["conv1.weight"] = torch.randn(nf[0], 1, 3, 3, generator=g) * 0.3
        s["conv1.bias"] = 0.1 * torch.randn(nf[0], generator=g)
    bn_params(s, "bn1", nf[0], g)
    strides = (1, 2, 2, 1) if variant == "L" else (1, 2, 2, 2)
    cin = nf[0]
    for stage, (n, cout, st) in enumerate(zip((3, 4, 6, 3), nf, strides), 1):
        for j in range(n):
            p = f"layer{stage}.{j}"
            s[f"{p}.conv1.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
            bn_params(s, f"{p}.bn1", cout, g)
            s[f"{p}.conv2.weight"] = torch.randn(cout, cout, 3, 3, generator=g) * (2 / (9 * cout)) ** 0.5
            bn_params(s, f"{p}.bn2", cout, g)
            s[f"{p}.se.fc.0.weight"] = torch.randn(cout // 8, cout, generator=g) / cout ** 0.5
            s[f"{p}.se.fc.0.bias"] = 0.1 * torch.randn(cout // 8, generator=g)
            s[f"{p}.se.fc.2.weight"] = torch.randn(cout, cout // 8, generator=g) / (cout // 8) ** 0.5
            s[f"{p}.se.fc.2.bias"] = 0.1 * torch.randn(cout, generator=g)
            if j == 0 and (st != 1 or cin != cout):
                s[f"{p}.downsample.0.weight"] = torch.randn(cout, cin, 1, 1, generator=g) * (2 / cin) ** 0.5
                bn_params(s, f"{p}.downsample.1", cout, g)
            cin = cout
    if variant == "L":
        s["sap_linear.weight"] = torch.randn(nf[3], nf[3], generator=g) / nf[3] ** 0.5
        s["sap_linear.bias"] = 0.1 * torch.randn(nf[3], generator=g)
        s["attention"] = torch.randn(nf[3], 1, generator=g) * 0.3
        out_dim = nf[3]
    else:
        d = nf[3] * (n_mels // 8)
        s["attention.0.weight"] = torch.randn(128, d, 1, generator=g) / d ** 0.5
        s["attention.0.bias"] = 0.1 * torch.randn(128, generator=g)
        bn_params(s, "attention.2", 128, g)
        s["attention.3.weight"] = torch.randn(d, 128, 1, generator=g) / 128 ** 0.5
        s["attention.3.bias"] = 0.1 * torch.randn(d, generator=g)
        out_dim = 2 * d
    s["fc.weight"] = torch.randn(n_out, out_dim, generator=g) / out_dim ** 0.5
    s["fc.bias"] = 0.1 * torch.randn(n_out, generator=g)
    state = {f"__S__.{k}": v for k, v in s.items()}
    fb = "__S__.torchfb.1." if preemphasis else "__S__.torchfb."
    if preemphasis:
        state["__S__.torchfb.0.flipped_filter"] = torch.tensor([[[-0.97, 1.0]]])
    state[fb + "spectrogram.window"] = torch.hamming_window(400)
    state[fb + "mel_scale.fb"] = torch.rand(257, n_mels, generator=g)
    state["__L__.fc.weight"] = torch.randn(100, n_out, generator=g)
    return state


def ref_vt(w: dict, logmel: torch.Tensor, variant: str) -> torch.Tensor:
    """voxceleb_trainer's ResNetSE forward after the log-mel: instance norm per mel bin,
    conv1 (L: -> bn -> relu; V2: -> relu -> bn), SE blocks (conv1 -> relu -> bn1 -> conv2 ->
    bn2 -> SE, + residual, relu), L: mean over frequency, SAP; V2: flatten, ASP; fc."""
    F = torch.nn.functional

    def bn(x, p):
        return F.batch_norm(x, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"], w[f"{p}.bias"],
                            False, 0.0, 1e-5)

    x = logmel.transpose(1, 2)
    x = ((x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)).unsqueeze(1)
    if variant == "L":
        x = F.relu(bn(F.conv2d(x, w["conv1.weight"], stride=(2, 1), padding=3), "bn1"))
        strides = (1, 2, 2, 1)
    else:
        x = bn(F.relu(F.conv2d(x, w["conv1.weight"], w["conv1.bias"], padding=1)), "bn1")
        strides = (1, 2, 2, 2)
    for stage, (n, st) in enumerate(zip((3, 4, 6, 3), strides), 1):
        for j in range(n):
            p = f"layer{stage}.{j}"
            stride = st if j == 0 else 1
            out = bn(F.relu(F.conv2d(x, w[f"{p}.conv1.weight"], stride=stride, padding=1)), f"{p}.bn1")
            out = bn(F.conv2d(out, w[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            y = out.mean(dim=(2, 3))
            y = torch.sigmoid(F.relu(y @ w[f"{p}.se.fc.0.weight"].T + w[f"{p}.se.fc.0.bias"])
                              @ w[f"{p}.se.fc.2.weight"].T + w[f"{p}.se.fc.2.bias"])
            out = out * y[:, :, None, None]
            res = x if f"{p}.downsample.0.weight" not in w else bn(
                F.conv2d(x, w[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + res)
    if variant == "L":
        x = x.mean(dim=2).transpose(1, 2)                           # (B, T, C)
        h = torch.tanh(x @ w["sap_linear.weight"].T + w["sap_linear.bias"])
        a = torch.softmax(h @ w["attention"], dim=1)
        pooled = (x * a).sum(dim=1)
    else:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        h = bn(F.relu(F.conv1d(x, w["attention.0.weight"], w["attention.0.bias"])), "attention.2")
        a = torch.softmax(F.conv1d(h, w["attention.3.weight"], w["attention.3.bias"]), dim=2)
        mu = (x * a).sum(dim=2)
        sg = torch.sqrt(((x * x * a).sum(dim=2) - mu * mu).clamp(min=1e-5))
        pooled = torch.cat([mu, sg], dim=1)
    return pooled @ w["fc.weight"].T + w["fc.bias"]


@pytest.mark.parametrize("variant, n_mels, preemphasis", [("L", 40, False), ("V2", 64, True)])
def test_voxceleb_trainer_random_weights_equal_reference(tmp_path, variant, n_mels, preemphasis):
    state = vt_state(variant, n_mels, preemphasis=preemphasis)
    model, cfg = imported(tmp_path, "voxceleb_trainer", save(state, tmp_path / "baseline.model"))
    assert (cfg.model.args["variant"], cfg.frontend.type, cfg.frontend.num_mel_bins) == (variant, "vt_mel", n_mels)
    assert cfg.frontend.preemphasis == (0.97 if preemphasis else 0.0) and cfg.features.cmvn_opts == "none"
    logmel = torch.randn(2, 48, n_mels)
    with torch.no_grad():
        ours = model.embed(logmel)
    w = {k[len("__S__."):]: v.double() if v.is_floating_point() else v for k, v in state.items()
         if k.startswith("__S__.")}
    ref = ref_vt(w, logmel.double(), variant)
    assert torch.allclose(ours.double(), ref, atol=1e-4 * ref.abs().max())


def test_imported_front_ends_from_audio(tmp_path):
    """Extraction computes an imported model's front-end from the audio, as its toolkit does:
    WeSpeaker's Kaldi fbank less the utterance mean, Resemblyzer's trimmed mel as it is."""
    from sid.embedder import options_from_text
    from sid.extract import Extractor
    from sid.features.compute import Fbank
    from sid.features.frontends import ResemblyzerMel, frontend_features
    from sid.features.options import FbankOptions

    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(16000) * 3000).astype(np.float32)
    import_checkpoint("wespeaker", save(wespeaker_resnet34_state(), tmp_path / "w.pt"), None, tmp_path / "we")
    ext = Extractor(tmp_path / "we", CPU)
    assert ext.from_audio
    fbank = Fbank(options_from_text(FbankOptions, ext.cfg.features.config, "record")).compute(samples, "u")
    assert fbank.shape == (98, 80)   # snip edges: 1 + (16000 - 400) // 160
    assert np.allclose(ext.prepare_audio("u", samples), fbank - fbank.mean(axis=0), atol=1e-5)
    import_checkpoint("resemblyzer", save({"model_state": resemblyzer_state()}, tmp_path / "r.pt"), None,
                      tmp_path / "re")
    speech = np.concatenate([np.zeros(8000, np.float32), samples, np.zeros(16000, np.float32)])
    ours = Extractor(tmp_path / "re", CPU).prepare_audio("u", speech)
    assert np.array_equal(ours, frontend_features(ResemblyzerMel(), speech))
    assert ours.shape == (160, 40) and (ours >= 0).all()
    # voxceleb_trainer's log-mel of the whole utterance, its own frames (one more than Kaldi's
    # here: 16040 samples), no pre-emphasis in this early-ResNetSE34L checkpoint, nothing subtracted.
    from sid.features.frontends import VTMel

    import_checkpoint("voxceleb_trainer", save(vt_state("L", 40, preemphasis=False), tmp_path / "v.model"), None,
                      tmp_path / "vt")
    wav = np.concatenate([samples, samples[:40]])
    vt = Extractor(tmp_path / "vt", CPU).prepare_audio("u", wav)
    assert vt.shape == (101, 40)
    assert np.allclose(vt, VTMel(40, preemphasis=0.0)(torch.from_numpy(wav)[None])[0].numpy(), atol=1e-5)


# -- ECAPA-TDNN: WeSpeaker and SpeechBrain ---------------------------------------------------------------
def _conv(s, name, cout, cin, k, g, conv_suffix=""):
    s[f"{name}{conv_suffix}.weight"] = torch.randn(cout, cin, k, generator=g) / (cin * k) ** 0.5
    s[f"{name}{conv_suffix}.bias"] = 0.1 * torch.randn(cout, generator=g)


def wespeaker_ecapa_state(c=512, feat_dim=80, embed_dim=192, seed=0) -> dict:
    """WeSpeaker ECAPA_TDNN_GLOB_c512's keys (layer1, layer2-4.se_res2block.*, conv, pool, bn, linear)."""
    g = torch.Generator().manual_seed(seed)
    s = {}
    _conv(s, "layer1.conv", c, feat_dim, 5, g)
    bn_params(s, "layer1.bn", c, g)
    for i in (2, 3, 4):
        p = f"layer{i}.se_res2block"
        for k in (0, 2):
            _conv(s, f"{p}.{k}.conv", c, c, 1, g)
            bn_params(s, f"{p}.{k}.bn", c, g)
        for j in range(7):
            _conv(s, f"{p}.1.convs.{j}", c // 8, c // 8, 3, g)
            bn_params(s, f"{p}.1.bns.{j}", c // 8, g)
        s[f"{p}.3.linear1.weight"] = torch.randn(128, c, generator=g) / c ** 0.5
        s[f"{p}.3.linear1.bias"] = 0.1 * torch.randn(128, generator=g)
        s[f"{p}.3.linear2.weight"] = torch.randn(c, 128, generator=g) / 128 ** 0.5
        s[f"{p}.3.linear2.bias"] = 0.1 * torch.randn(c, generator=g)
    _conv(s, "conv", 3 * c, 3 * c, 1, g)
    _conv(s, "pool.linear1", 128, 9 * c, 1, g)
    _conv(s, "pool.linear2", 3 * c, 128, 1, g)
    bn_params(s, "bn", 6 * c, g)
    s["linear.weight"] = torch.randn(embed_dim, 6 * c, generator=g) / (6 * c) ** 0.5
    s["linear.bias"] = 0.1 * torch.randn(embed_dim, generator=g)
    s["projection.weight"] = torch.randn(1211, embed_dim, generator=g)
    return s


def _bn(w, x, p):
    return torch.nn.functional.batch_norm(x, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"],
                                          w[f"{p}.bias"], False, 0.0, 1e-5)


def ref_wespeaker_ecapa(w: dict, feats: torch.Tensor, c=512) -> torch.Tensor:
    """Conv1d-ReLU-BN layer1; SE-Res2Blocks chained (x + block(x)), Res2Net groups 0-6 convolved
    in turn, group 7 passed through, SE with linear layers; conv+ReLU over layers 2-4; ASTP
    with global context (unbiased std); bn; linear."""
    F = torch.nn.functional

    def crb(x, p, k=1, d=1, bn=None):
        y = F.relu(F.conv1d(x, w[f"{p}.weight"], w[f"{p}.bias"], padding=d * (k - 1) // 2, dilation=d))
        return _bn(w, y, bn)

    h = crb(feats.transpose(1, 2), "layer1.conv", 5, bn="layer1.bn")
    outs = []
    for i, d in zip((2, 3, 4), (2, 3, 4)):
        p = f"layer{i}.se_res2block"
        y = crb(h, f"{p}.0.conv", bn=f"{p}.0.bn")
        parts = y.split(c // 8, dim=1)
        res, sp = [], None
        for j in range(7):
            sp = parts[j] if j == 0 else sp + parts[j]
            sp = crb(sp, f"{p}.1.convs.{j}", 3, d, bn=f"{p}.1.bns.{j}")
            res.append(sp)
        y = crb(torch.cat(res + [parts[7]], dim=1), f"{p}.2.conv", bn=f"{p}.2.bn")
        z = F.relu(y.mean(dim=2) @ w[f"{p}.3.linear1.weight"].T + w[f"{p}.3.linear1.bias"])
        y = y * torch.sigmoid(z @ w[f"{p}.3.linear2.weight"].T + w[f"{p}.3.linear2.bias"])[:, :, None]
        h = h + y
        outs.append(h)
    x = F.relu(F.conv1d(torch.cat(outs, dim=1), w["conv.weight"], w["conv.bias"]))
    t = x.shape[-1]
    ctx = torch.cat([x, x.mean(-1, keepdim=True).expand(-1, -1, t),
                     torch.sqrt(x.var(-1, keepdim=True) + 1e-10).expand(-1, -1, t)], dim=1)
    a = torch.tanh(F.conv1d(ctx, w["pool.linear1.weight"], w["pool.linear1.bias"]))
    a = torch.softmax(F.conv1d(a, w["pool.linear2.weight"], w["pool.linear2.bias"]), dim=2)
    mean = (a * x).sum(2)
    std = torch.sqrt(((a * x * x).sum(2) - mean ** 2).clamp(min=1e-10))
    return _bn(w, torch.cat([mean, std], dim=1), "bn") @ w["linear.weight"].T + w["linear.bias"]


def test_wespeaker_ecapa_random_weights_equal_reference(tmp_path):
    state = wespeaker_ecapa_state()
    conf = tmp_path / "config.yaml"
    conf.write_text("model: ECAPA_TDNN_GLOB_c512\nmodel_args:\n  feat_dim: 80\n  embed_dim: 192\n"
                    "  pooling_func: ASTP\n")
    model, cfg = imported(tmp_path, "wespeaker", save(state, tmp_path / "avg_model.pt"), conf)
    assert cfg.model.args["style"] == "wespeaker" and cfg.features.type == "fbank"
    feats = torch.randn(2, 40, 80)
    with torch.no_grad():
        ours = model.embed(feats)
    ref = ref_wespeaker_ecapa({k: v.double() if v.is_floating_point() else v for k, v in state.items()},
                              feats.double())
    assert torch.allclose(ours.double(), ref, atol=1e-4 * ref.abs().max())


SB_HYPERPARAMS = """\
n_mels: 80
emb_dim: 192
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [256, 256, 256, 256, 768]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 64
    lin_neurons: !ref <emb_dim>
"""


def speechbrain_ecapa_state(c=256, feat_dim=80, att=64, embed_dim=192, seed=0) -> dict:
    """SpeechBrain ECAPA_TDNN's keys (its Conv1d/BatchNorm1d wrappers: .conv.conv, .norm.norm)."""
    g = torch.Generator().manual_seed(seed)
    s = {}

    def tdnn(p, cout, cin, k):
        _conv(s, f"{p}.conv.conv", cout, cin, k, g)
        bn_params(s, f"{p}.norm.norm", cout, g)
    tdnn("blocks.0", c, feat_dim, 5)
    for i in (1, 2, 3):
        tdnn(f"blocks.{i}.tdnn1", c, c, 1)
        for j in range(7):
            tdnn(f"blocks.{i}.res2net_block.blocks.{j}", c // 8, c // 8, 3)
        tdnn(f"blocks.{i}.tdnn2", c, c, 1)
        _conv(s, f"blocks.{i}.se_block.conv1.conv", 128, c, 1, g)
        _conv(s, f"blocks.{i}.se_block.conv2.conv", c, 128, 1, g)
    tdnn("mfa", 3 * c, 3 * c, 1)
    tdnn("asp.tdnn", att, 9 * c, 1)
    _conv(s, "asp.conv.conv", 3 * c, att, 1, g)
    bn_params(s, "asp_bn.norm", 6 * c, g)
    _conv(s, "fc.conv", embed_dim, 6 * c, 1, g)
    return s


def ref_speechbrain_ecapa(w: dict, feats: torch.Tensor) -> torch.Tensor:
    """TDNN blocks conv ('same' by reflection) -> ReLU -> BN; SE-Res2Net blocks chained, the
    Res2Net's first chunk passed through and chunk i convolved with chunk i-1's output added;
    mfa over blocks 1-3; attentive statistics with global context; asp_bn; fc (1x1 conv)."""
    F = torch.nn.functional

    def tdnn(x, p, k=1, d=1):
        pad = d * (k - 1) // 2
        if pad:
            x = F.pad(x, (pad, pad), mode="reflect")
        y = F.relu(F.conv1d(x, w[f"{p}.conv.conv.weight"], w[f"{p}.conv.conv.bias"], dilation=d))
        return _bn(w, y, f"{p}.norm.norm")

    x = tdnn(feats.transpose(1, 2), "blocks.0", 5)
    xl = []
    for i, d in zip((1, 2, 3), (2, 3, 4)):
        p = f"blocks.{i}"
        y = tdnn(x, f"{p}.tdnn1")
        ys = []
        for j, chunk in enumerate(y.chunk(8, dim=1)):
            if j == 0:
                yj = chunk
            else:
                yj = tdnn(chunk if j == 1 else chunk + yj, f"{p}.res2net_block.blocks.{j - 1}", 3, d)
            ys.append(yj)
        y = tdnn(torch.cat(ys, dim=1), f"{p}.tdnn2")
        se = F.relu(F.conv1d(y.mean(2, keepdim=True), w[f"{p}.se_block.conv1.conv.weight"],
                             w[f"{p}.se_block.conv1.conv.bias"]))
        y = y * torch.sigmoid(F.conv1d(se, w[f"{p}.se_block.conv2.conv.weight"], w[f"{p}.se_block.conv2.conv.bias"]))
        x = y + x
        xl.append(x)
    x = tdnn(torch.cat(xl, dim=1), "mfa")
    t = x.shape[-1]
    mean = x.mean(2, keepdim=True)
    std = torch.sqrt(((x - mean) ** 2).mean(2, keepdim=True).clamp(min=1e-12))
    attn = tdnn(torch.cat([x, mean.expand(-1, -1, t), std.expand(-1, -1, t)], dim=1), "asp.tdnn")
    attn = torch.softmax(F.conv1d(torch.tanh(attn), w["asp.conv.conv.weight"], w["asp.conv.conv.bias"]), dim=2)
    mu = (attn * x).sum(2)
    sg = torch.sqrt((attn * (x - mu[:, :, None]) ** 2).sum(2).clamp(min=1e-12))
    pooled = _bn(w, torch.cat([mu, sg], dim=1), "asp_bn.norm")
    return F.conv1d(pooled[:, :, None], w["fc.conv.weight"], w["fc.conv.bias"])[:, :, 0]


def test_speechbrain_ecapa_random_weights_equal_reference(tmp_path):
    state = speechbrain_ecapa_state()
    conf = tmp_path / "hyperparams.yaml"
    conf.write_text(SB_HYPERPARAMS)
    model, cfg = imported(tmp_path, "speechbrain", save(state, tmp_path / "embedding_model.ckpt"), conf)
    assert cfg.model.args["style"] == "speechbrain" and cfg.model.args["channels"] == 256
    assert (cfg.frontend.type, cfg.frontend.num_mel_bins, cfg.features.cmvn_opts) == ("sb_fbank", 80, "")
    feats = torch.randn(3, 40, 80)
    w = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    with torch.no_grad():
        ours = model.embed(feats)
        # Chunks of different lengths in one batch: each as alone (reflection is not zero padding).
        short = model.embed(feats, torch.tensor([40, 31, 40]))[1]
    assert torch.allclose(ours.double(), ref_speechbrain_ecapa(w, feats.double()), atol=1e-4 * ours.abs().max())
    assert torch.allclose(short.double(), ref_speechbrain_ecapa(w, feats[1:2, :31].double())[0], atol=1e-4)


def test_speechbrain_fbank_as_published():
    """Power spectrum of centred 25 ms Hamming frames, symmetric triangles at HTK-mel-spaced
    centres (0-8 kHz), 10 log10 with amin 1e-10, floored 80 dB under the utterance maximum."""
    from sid.features.frontends import SBFbank

    wav = np.random.default_rng(1).standard_normal(8000) * 0.1
    wav[4000:] *= 1e-5    # a quiet half, under the 80 dB floor
    pad = np.pad(wav, 200)
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([pad[i * 160:i * 160 + 400] * window for i in range(1 + len(wav) // 160)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 82)
    hz = 700 * (10 ** (mel / 2595) - 1)
    freqs = np.linspace(0, 8000, 201)
    slope = (freqs[:, None] - hz[None, 1:-1]) / np.diff(hz)[None, :-1]
    db = 10 * np.log10(np.maximum(power @ np.maximum(0, np.minimum(slope + 1, 1 - slope)), 1e-10))
    ref = np.maximum(db, db.max() - 80)
    ours = SBFbank(80)(torch.from_numpy(wav * 32768).float()[None])[0].numpy()
    assert ours.shape == ref.shape and (ref == db.max() - 80).any()
    assert np.allclose(ours, ref, atol=2e-3)


@pytest.mark.parametrize("fmt, make, change, message", [
    ("wespeaker", lambda: wespeaker_resnet34_state(), lambda s: s.pop("layer3.2.bn1.running_var"),
     "missing key 'layer3.2.bn1.running_var'"),
    ("voxceleb_trainer", lambda: vt_state("L", 40), lambda s: s.update({"__S__.layer9.0.conv1.weight": torch.zeros(1)}),
     "unknown key '__S__.layer9.0.conv1.weight'"),
    ("speechbrain", lambda: speechbrain_ecapa_state(), lambda s: s.update(
        {"blocks.2.tdnn1.conv.conv.weight": torch.zeros(256, 128, 1)}),
     r"'blocks.2.tdnn1.conv.conv.weight' has shape \[256, 128, 1\]"),
])
def test_every_format_names_a_mismatched_key(tmp_path, fmt, make, change, message):
    state = make()
    change(state)
    config = None
    if fmt == "speechbrain":
        config = tmp_path / "hyperparams.yaml"
        config.write_text(SB_HYPERPARAMS)
    with pytest.raises(SidError, match=message):
        import_checkpoint(fmt, save(state, tmp_path / "ckpt.pt"), config, tmp_path / "exp")


def test_export_of_an_imported_model_describes_its_own_front_end(tmp_path):
    """The record beside an exported imported model states its front-end, no energy VAD and its
    1.6 s partials, not the recipe's VAD, sliding CMN and Kaldi chunking."""
    import yaml

    from sid.bin.export_model import export

    exp = tmp_path / "exp"
    import_checkpoint("resemblyzer", save({"model_state": resemblyzer_state()}, tmp_path / "p.pt"), None, exp)
    export(exp, tmp_path / "model.pt", "torchscript")
    side = yaml.safe_load((tmp_path / "model.pt.frontend.yaml").read_text())
    assert side["vad"] is None and side["features"]["source"] == "audio"
    assert side["frontend"]["type"] == "resemblyzer"
    assert "no mean subtracted" in side["input"]["what"] and "no energy VAD" in side["input"]["what"]
    assert side["chunking"].startswith("windows of 160 frames every 77 frames")
    with pytest.raises(SidError, match="do not give --vad-config"):
        export(exp, tmp_path / "model2.pt", "torchscript", vad_config="conf/vad.conf")
