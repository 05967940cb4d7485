"""Trial lists and score files are checked wherever they are read: non-finite scores,
pairs given twice, partial coverage, VoxCeleb-format lists, empty outputs; and
compute_eer prints what Kaldi's compute-eer prints."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from sid import kaldi_io
from sid.backend.plda import Plda
from sid.backend.scoring import match_scores, read_scores, read_trials
from sid.errors import SidError


def tool(name, *args, env, cwd=None, input=None):
    return subprocess.run([sys.executable, "-m", f"sid.bin.{name}", *map(str, args)], env=env, cwd=cwd,
                          input=input, capture_output=True, text=True)


def write(path, text):
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- the shared readers

def test_trials_duplicate_and_conflict_name_both_lines(tmp_path):
    f = write(tmp_path / "trials", "a b target\nc d nontarget\n\na b target\n")
    with pytest.raises(SidError, match=r"trials:4: duplicate trial 'a b' \(also at line 1\)"):
        read_trials(f)
    f = write(tmp_path / "trials", "a b target\nc d nontarget\na b nontarget\n")
    with pytest.raises(SidError, match=r"trials:3: conflicting trial for 'a b': 'nontarget' here, 'target' at line 1"):
        read_trials(f, need_labels=True)
    # The same utterances in the other order are another trial.
    assert len(read_trials(write(tmp_path / "t2", "a b target\nb a target\n"))) == 2


def test_trials_labels_and_widths(tmp_path):
    with pytest.raises(SidError, match=r"trials:2: trial label must be target or nontarget, got 'tgt'"):
        read_trials(write(tmp_path / "trials", "a b target\nc d tgt\n"))
    with pytest.raises(SidError, match=r"trials:2: expected 'utt1 utt2 target\|nontarget', got 'c d'"):
        read_trials(write(tmp_path / "trials", "a b target\nc d\n"), need_labels=True)
    with pytest.raises(SidError, match=r"trials: no trials \(empty file\)"):
        read_trials(write(tmp_path / "trials", "\n"))
    t = read_trials(write(tmp_path / "trials", "a b target\n\nc d nontarget\n"), need_labels=True)
    assert t.labels.tolist() == [True, False] and t.where(1) == f"{tmp_path / 'trials'}:3"


def test_voxceleb_list_is_recognised(tmp_path):
    f = write(tmp_path / "veri_test.txt", "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
                                          "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n")
    for need_labels in (False, True):
        with pytest.raises(SidError, match=r"veri_test.txt:1: this is a VoxCeleb-format trial list .*"
                                           r"not Kaldi trials .*convert"):
            read_trials(f, need_labels=need_labels)
    with pytest.raises(SidError, match="VoxCeleb-format"):
        read_scores(f)


def test_scores_non_finite_duplicate_conflicting(tmp_path):
    for bad in ("nan", "inf", "-inf", "NaN"):
        f = write(tmp_path / "scores", f"a b 0.5\nc d {bad}\n")
        with pytest.raises(SidError, match=rf"scores:2: score '{bad}' is not a finite number"):
            read_scores(f)
    with pytest.raises(SidError, match=r"scores:2: score 'x' is not a finite number"):
        read_scores(write(tmp_path / "scores", "a b 0.5\nc d x\n"))
    with pytest.raises(SidError, match=r"scores:3: duplicate score 'a b' \(also at line 1\)"):
        read_scores(write(tmp_path / "scores", "a b 0.5\nc d 1\na b 0.5\n"))
    with pytest.raises(SidError, match=r"scores:2: conflicting score for 'a b': '0.7' here, '0.5' at line 1"):
        read_scores(write(tmp_path / "scores", "a b 0.5\na b 0.7\n"))


def test_match_scores_partial_and_unknown(tmp_path, caplog):
    trials = read_trials(write(tmp_path / "trials", "a b target\na c nontarget\nb c nontarget\n"), need_labels=True)
    scored, _ = read_scores(write(tmp_path / "scores", "b c -1\na b 2\n"))
    with pytest.raises(SidError, match=r"scores: 1 of 3 trials have no score \(first: 'a c', .*trials:2\); "
                                       r"pass --allow-partial=true"):
        match_scores(trials, scored)
    assert match_scores(trials, scored, allow_partial=True).tolist() == [False, True]
    assert "1 of 3 trials have no score" in caplog.text
    scored, _ = read_scores(write(tmp_path / "scores", "a b 2\na d 1\n"))
    with pytest.raises(SidError, match=r"scores:2: scored pair 'a d' is not a trial of .*trials"):
        match_scores(trials, scored, allow_partial=True)


# ---------------------------------------------------------------- the tools

@pytest.fixture()
def backend_files(tmp_path):
    """Three speakers' vectors (a1 a2 b1 b2 c1), full trials, and a vector table lacking c1."""
    rng = np.random.default_rng(0)
    centres = {s: rng.normal(size=8) for s in "abc"}
    keys = ["a1", "a2", "b1", "b2", "c1"]
    x = np.stack([centres[k[0]] + 0.1 * rng.normal(size=8) for k in keys]).astype(np.float32)
    kaldi_io.write_vectors(f"ark,t:{tmp_path / 'all.txt'}", keys, x)
    kaldi_io.write_vectors(f"ark,t:{tmp_path / 'no_c1.txt'}", keys[:4], x[:4])
    pairs = [(p, q) for i, p in enumerate(keys) for q in keys[i + 1:]]
    write(tmp_path / "trials", "".join(f"{p} {q} {'target' if p[0] == q[0] else 'nontarget'}\n" for p, q in pairs))
    Plda(np.zeros(8), np.eye(8), np.full(8, 2.0)).write(str(tmp_path / "plda"))
    return tmp_path


def test_scoring_tools_missing_vector_is_an_error_unless_allow_partial(backend_files, sid_env):
    d = backend_files
    for name, args in (("score_cosine", []), ("score_plda", [d / "plda"]), ("ivector_plda_scoring", [d / "plda"])):
        out = d / f"{name}.score"
        proc = tool(name, *args, f"ark,t:{d / 'no_c1.txt'}", f"ark,t:{d / 'no_c1.txt'}", d / "trials", out, env=sid_env)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"{d / 'trials'}:4: no test vector for 'c1' (4 of 10 trials" in proc.stderr
        assert "--allow-partial=true" in proc.stderr and not out.exists()
        proc = tool(name, "--allow-partial=true", *args, f"ark,t:{d / 'no_c1.txt'}", f"ark,t:{d / 'no_c1.txt'}",
                    d / "trials", out, env=sid_env)
        assert proc.returncode == 0, proc.stderr
        assert len(out.read_text().splitlines()) == 6 and "WARNING" in proc.stderr


def test_zero_trials_scored_leaves_no_file(backend_files, sid_env):
    d = backend_files
    write(d / "other", "x1 x2 target\nx1 x3 nontarget\n")
    out = d / "out.score"
    proc = tool("score_cosine", "--allow-partial=true", f"ark,t:{d / 'all.txt'}", f"ark,t:{d / 'all.txt'}",
                d / "other", out, env=sid_env)
    assert proc.returncode == 1 and "no trial can be scored" in proc.stderr and not out.exists()
    proc = tool("score_plda", "--allow-partial=true", d / "plda", f"ark,t:{d / 'all.txt'}", f"ark,t:{d / 'all.txt'}",
                d / "other", out, env=sid_env)
    assert proc.returncode == 1 and "no trial can be scored" in proc.stderr and not out.exists()


def test_score_norm_rejects_bad_scores(backend_files, sid_env):
    d = backend_files
    vecs = f"ark,t:{d / 'all.txt'}"
    write(d / "scores", "a1 a2 0.9\nb1 c1 nan\n")
    proc = tool("score_norm", "--method=snorm", vecs, vecs, vecs, d / "scores", d / "normed", env=sid_env)
    assert proc.returncode == 1 and f"{d / 'scores'}:2: score 'nan' is not a finite number" in proc.stderr
    assert not (d / "normed").exists()


def test_metrics_tools_partial_coverage(backend_files, sid_env):
    d = backend_files
    vecs = f"ark,t:{d / 'all.txt'}"
    assert tool("score_cosine", vecs, vecs, d / "trials", d / "full", env=sid_env).returncode == 0
    lines = (d / "full").read_text().splitlines()
    write(d / "part", "\n".join(lines[:-2]) + "\n")
    results = d / "results.json"
    for name, args in (("compute_metrics", [d / "trials", d / "part", results]),
                       ("compute_min_dcf", [d / "part", d / "trials"]),
                       ("plot_scores", [d / "trials", d, f"cosine={d / 'part'}"])):
        proc = tool(name, *args, env=sid_env)
        assert not results.exists() or name != "compute_metrics"
        assert not (d / "det_trials.png").exists()
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert f"{d / 'part'}: 2 of 10 trials have no score" in proc.stderr, (name, proc.stderr)
        flag = "--allow-partial" if name == "compute_min_dcf" else "--allow-partial=true"
        extra = ["true"] if name == "compute_min_dcf" else []
        proc = tool(name, flag, *extra, *args, env=sid_env)
        assert proc.returncode == 0 and "2 of 10 trials have no score" in proc.stderr, (name, proc.stderr)
        if name == "compute_metrics":
            assert json.loads(results.read_text())["trials"]["scores"]["num_trials"] == 8
    assert (d / "det_trials.png").read_bytes()[:4] == b"\x89PNG"


def test_steps_pass_allow_partial(backend_files, sid_env):
    d = backend_files
    vecs = f"ark,t:{d / 'all.txt'}"
    (d / "scores").mkdir()
    assert tool("score_cosine", vecs, vecs, d / "trials", d / "scores/trials.cosine.score", env=sid_env).returncode == 0
    lines = (d / "scores/trials.cosine.score").read_text().splitlines()
    write(d / "scores/trials.cosine.score", "\n".join(lines[1:]) + "\n")
    cmd = ["steps/compute_metrics.sh", "--plots", "false", str(d / "scores"), str(d / "res"), str(d / "trials")]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(cmd, env=sid_env, cwd=repo, capture_output=True, text=True)
    assert proc.returncode != 0 and "1 of 10 trials have no score" in proc.stderr
    proc = subprocess.run(cmd[:1] + ["--allow-partial", "true"] + cmd[1:], env=sid_env, cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- compute_eer against Kaldi's compute-eer

def test_compute_eer_rejects_non_finite_and_blank(tmp_path, sid_env):
    for text, line, msg in (("1 target\nnan nontarget\n", 2, "score 'nan' is not a finite number"),
                            ("inf target\n0 nontarget\n", 1, "score 'inf' is not a finite number"),
                            ("1 target\n\n0 nontarget\n", 2, "Invalid input line (must have two fields): ''")):
        f = write(tmp_path / "key", text)
        proc = tool("compute_eer", f, env=sid_env)
        assert proc.returncode == 1 and proc.stdout == "" and f"{f}:{line}: {msg}" in proc.stderr, proc.stderr


def test_compute_eer_reads_in_chunks(tmp_path):
    """Chunked parsing gives the whole input's scores, and a bad line in a later chunk is named by
    its line in the file."""
    from sid.bin.compute_eer import read_score_labels

    f = write(tmp_path / "key", "1 target\n0.5 nontarget\n2 target\n-1 nontarget\n3 target\n")
    scores, target = read_score_labels(f, rows=2)
    assert scores.tolist() == [1, 0.5, 2, -1, 3] and target.tolist() == [True, False, True, False, True]
    f = write(tmp_path / "bad", "1 target\n0.5 nontarget\n2 target\n-1 nontarget\n3 maybe\n")
    with pytest.raises(SidError, match=r"bad:5: Invalid input line \(second field"):
        read_score_labels(f, rows=2)


def _key_files(tmp_path):
    """Score/label files spanning EERs of 0, 100 and fractions of a thousandth, with ties."""
    rng = random.Random(3)
    cases = {"perfect": "2 target\n1 target\n0 nontarget\n-1 nontarget\n",
             "reversed": "0 target\n0.5 target\n1 nontarget\n2 nontarget\n",
             "ties": "1 target\n1 nontarget\n1 target\n1 nontarget\n",
             "thousandth": "".join(f"{10 + i * 1e-3:.4f} target\n" for i in range(30000))
             + "-5 target\n" + "".join(f"{i * 1e-3:.4f} nontarget\n" for i in range(1000))}
    for n, (nt, nn, sep, q) in enumerate([(3, 200, 1.0, None), (13, 1000, 4.0, 0.25), (999, 2, 0.0, 1.0),
                                          (3000, 1000, 2.0, None), (7, 11, 1.0, 1.0)]):
        lines = [f"{round(rng.gauss(mu, 1) / q) * q if q else rng.gauss(mu, 1):.6g} {lab}"
                 for mu, lab, k in ((sep, "target", nt), (0.0, "nontarget", nn)) for _ in range(k)]
        rng.shuffle(lines)
        cases[f"random{n}"] = "\n".join(lines) + "\n"
    return {name: write(tmp_path / name, text) for name, text in cases.items()}


def test_compute_eer_matches_kaldi_binary(tmp_path, sid_env, kaldi_ref):
    binary = kaldi_ref / "bin" / "compute-eer"
    env = dict(sid_env, LD_LIBRARY_PATH=str(kaldi_ref / "lib"))
    probe = subprocess.run([str(binary), "--help"], env=env, capture_output=True, text=True)
    if "Usage: compute-eer" not in probe.stderr:
        pytest.skip(f"Kaldi's compute-eer does not run here (needs libopenblas0-pthread): {probe.stderr[-200:]}")
    outputs = set()
    for name, path in _key_files(tmp_path).items():
        kaldi = subprocess.run([str(binary), path], env=env, capture_output=True, text=True)
        ours = tool("compute_eer", path, env=sid_env)
        assert kaldi.returncode == ours.returncode == 0, (name, ours.stderr)
        assert ours.stdout == kaldi.stdout, name
        kaldi_log = next(line for line in kaldi.stderr.splitlines() if line.startswith("LOG"))
        assert ours.stderr.splitlines()[0].split(") ", 1)[1] == kaldi_log.split(") ", 1)[1], name
        outputs.add(kaldi.stdout)
    assert len(outputs) >= 5  # the cases print different figures, not one value throughout
    # Kaldi's own errors, with the file and line added.
    for text, kaldi_msg in (("", "Empty input."), ("1 target\n", "No non-target scores seen."),
                            ("1 target x\n", "Invalid input line (must have two fields): 1 target x"),
                            ("abc target\n", "Invalid input line (first field must be float): abc target")):
        f = write(tmp_path / "bad", text)
        kaldi = subprocess.run([str(binary), f], env=env, capture_output=True, text=True)
        ours = tool("compute_eer", f, env=sid_env)
        assert kaldi.returncode != 0 and ours.returncode == 1 and kaldi_msg in kaldi.stderr
        assert kaldi_msg.split(": ")[0] in ours.stderr and "Traceback" not in ours.stderr


def test_unwritable_output_is_an_error_not_a_traceback(tmp_path, sid_env):
    trials = write(tmp_path / "trials", "a b target\na c nontarget\n")
    scores = write(tmp_path / "scores", "a b 1\na c 0\n")
    proc = tool("compute_metrics", trials, scores, "/proc/results.json", env=sid_env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ERROR (compute_metrics): No such file or directory: /proc/"), proc.stderr


def test_key_lookup_is_exact_whatever_the_hashes():
    from sid.backend.scoring import as_bytes, key_hashes, lookup

    keys = as_bytes(["a", "bb", "id10001-1zcIwhmdeo4-00001", "é-utt", "c"])
    queries = as_bytes(["c", "zz", "a", "id10001-1zcIwhmdeo4-00001", "é-utt", "bb", "id10001-1zcIwhmdeo4-0000"])
    queries = queries.astype("S40")  # another width than the table's
    # The same key hashes alike in arrays of other widths (NUL padding adds nothing).
    assert key_hashes(keys)[2] == key_hashes(queries)[3] and key_hashes(keys)[0] == key_hashes(queries)[2]
    expected = [4, -1, 0, 2, 3, 1, -1]
    assert lookup(keys, key_hashes(keys), queries, key_hashes(queries)).tolist() == expected
    # Every hash equal: the rounds of tables place one key each, then the rest are found exactly.
    same = np.zeros(len(keys), dtype=np.uint64)
    assert lookup(keys, same, queries, np.zeros(len(queries), dtype=np.uint64)).tolist() == expected
    # A trial list's keys index the vector table's (str keys), misses named by index_trials.
    rng = np.random.default_rng(0)
    table = [f"spk{i % 97}-utt{i}" for i in range(5000)]
    ask = rng.integers(0, 6000, 20000)
    names = as_bytes([f"spk{i % 97}-utt{i}" for i in ask])
    got = lookup(as_bytes(table), key_hashes(as_bytes(table)), names, key_hashes(names))
    assert got.tolist() == [i if i < 5000 else -1 for i in ask.tolist()]
    assert lookup(as_bytes([]), key_hashes(as_bytes([])), names[:2], key_hashes(names[:2])).tolist() == [-1, -1]


def test_columns_read_by_numpy_equal_the_split_lines(tmp_path):
    from sid.backend import scoring

    # Keys of several lengths (non-ASCII too), labels and scores of several widths; with and
    # without a final newline. Then files the fast layout check refuses (blank line, tab, two
    # spaces, a space at an end): the same fields, read line by line.
    rng = np.random.default_rng(0)
    keys = [f"spk{rng.integers(1000)}-utt{'x' * int(rng.integers(0, 9))}{i}" for i in range(300)] + ["é-u", "a"]
    lines = [f"{k} {keys[-1 - i]} {rng.choice(['target', 'nontarget'])}" for i, k in enumerate(keys)]
    for text, fast in (("\n".join(lines) + "\n", True), ("\n".join(lines), True),
                       ("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]), False),
                       (lines[0] + "\n" + lines[1].replace(" ", "\t", 1) + "\n", False),
                       (lines[0].replace(" ", "  ", 1) + "\n", False), (" " + lines[0] + "\n", False),
                       (lines[0] + " \n", False)):
        data = text.encode()
        assert (scoring._single_spaced_columns(data, 3) is not None) == fast
        t = read_trials(write(tmp_path / "trials", text), need_labels=True)
        fields = data.split()
        assert t.raw1.tolist() == fields[0::3] and t.raw2.tolist() == fields[1::3]
        assert t.labels.tolist() == [f == b"target" for f in fields[2::3]]
        assert t.raw1.dtype.itemsize == max(map(len, fields[0::3]))
    scored, scores = read_scores(write(tmp_path / "scores", "a bb 0.5\nccc d -12.25\n"))
    assert scored.raw2.tolist() == [b"bb", b"d"] and scores.tolist() == [0.5, -12.25]


def test_scores_are_printed_as_printf_prints_them(tmp_path):
    from sid.backend.scoring import format_g7, write_scores

    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(20000) * 10.0 ** rng.integers(-8, 10, 20000),   # every notation and exponent
        rng.integers(-2 ** 24, 2 ** 24, 20000) / 2.0 ** rng.integers(0, 30, 20000),  # exact binary fractions: ties
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-4, 9.9999995e-5, 1e6, 9999999.5, 1e7, 1234567.5, -1234568.5,
         0.5, 1.0, 10.0, 123456.75, 1e-5, 1e-45, 3.4e38, 999999.95, 99999.995, 12.5]]).astype(np.float32)
    values = values.astype(np.float64)
    got = [bytes(row[row != 0]) for row in format_g7(values)]
    assert got == [b"%.7g" % v for v in values.tolist()]
    # Whole lines, across chunks, keys of two widths.
    k1 = [f"u{i}" for i in range(10)]
    k2 = [f"test-{i * 37}" for i in range(10)]
    write_scores(str(tmp_path / "s"), k1, k2, values[:10], chunk=3)
    assert (tmp_path / "s").read_bytes() == b"".join(b"%s %s %.7g\n" % (a.encode(), b.encode(), v)
                                                     for a, b, v in zip(k1, k2, values[:10].tolist()))
