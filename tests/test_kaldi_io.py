"""sid.kaldi_io: tables read back as written (through files, scp, pipes), truncated archives
and failed pipes are errors naming the archive, offset and key, outputs appear only when
complete (archive before scp), and a full disk is a clear error that leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest

from sid import kaldi_io
from sid.errors import DiskFullError, SidError
from sid.kaldi_io import RandomAccessReader, ScalarWriter, TableWriter, random_access, read_matrices


def _mats(n=4, rows=30, cols=5, seed=0):
    rng = np.random.default_rng(seed)
    return {f"utt{i}": rng.standard_normal((rows + i, cols)).astype(np.float32) for i in range(n)}


@pytest.mark.parametrize("compress", [None, 2])
def test_matrices_round_trip_through_ark_scp_pipe_and_text(tmp_path, compress):
    mats = _mats()
    ark, scp = tmp_path / "f.ark", tmp_path / "f.scp"
    with TableWriter(f"ark,scp:{ark},{scp}", compression_method=compress) as w:
        for k, v in mats.items():
            w.write(k, v)
    tol = 0.05 if compress else 0
    for spec in (f"ark:{ark}", f"scp:{scp}", f"ark:cat {ark} |"):
        got = dict(read_matrices(spec))
        assert list(got) == list(mats), spec
        for k in mats:
            np.testing.assert_allclose(got[k], mats[k], atol=tol)
    table = random_access(f"scp:{scp}")
    assert "utt2" in table and len(table) == 4
    np.testing.assert_allclose(table["utt2"], mats["utt2"], atol=tol)
    # Kaldi's own layout: kaldiio reads what we write.
    np.testing.assert_allclose(kaldiio.load_scp(str(scp))["utt3"], mats["utt3"], atol=tol)
    with TableWriter(f"ark,t:{tmp_path}/t.ark") as w:
        w.write("v", np.array([1.5, 2, 1 / 3], np.float32))
        w.write("m", mats["utt0"][:2])
    got = dict(read_matrices(f"ark,t:{tmp_path}/t.ark"))
    np.testing.assert_allclose(got["v"], [1.5, 2, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(got["m"], mats["utt0"][:2], rtol=1e-6)


@pytest.mark.parametrize("compress", [None, 2])
def test_truncated_archive_names_archive_offset_and_key(tmp_path, compress):
    mats = _mats()
    with TableWriter(f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp", compression_method=compress) as w:
        for k, v in mats.items():
            w.write(k, v)
    data = (tmp_path / "f.ark").read_bytes()
    starts = [int(line.rsplit(":", 1)[1]) for line in (tmp_path / "f.scp").read_text().splitlines()]
    cut = tmp_path / "cut.ark"
    for at, key in ((len(data) - 3, "utt3"), (starts[2] + 7, "utt2"), (starts[2] - 2, "utt"), (starts[1] - 4, "u")):
        cut.write_bytes(data[:at])
        with pytest.raises(SidError, match=rf"cut.ark: truncated archive.*byte \d+.*'{key}'"):
            list(read_matrices(f"ark:{cut}"))
        with pytest.raises(SidError, match="truncated archive"):
            list(read_matrices(f"ark:cat {cut} |"))
    # Cut between two objects, an archive is a shorter archive (as for Kaldi).
    cut.write_bytes(data[:starts[2] - len("utt2 ")])
    assert list(dict(read_matrices(f"ark:{cut}"))) == ["utt0", "utt1"]
    # An scp pointing into a truncated archive: the entry is named.
    (tmp_path / "f.ark").write_bytes(data[:starts[3] + 20])
    with pytest.raises(SidError, match=r"f.ark: truncated archive: entry 'utt3' .* at byte \d+"):
        list(read_matrices(f"scp:{tmp_path}/f.scp"))
    with pytest.raises(ValueError, match="truncated archive"):
        RandomAccessReader().num_rows(f"{tmp_path}/f.ark:{starts[3]}")
    assert RandomAccessReader().num_rows(f"{tmp_path}/f.ark:{starts[1]}") == 31


def test_failed_pipe_is_an_error_not_an_empty_table(tmp_path):
    with pytest.raises(SidError, match="failed with status"):
        list(read_matrices(f"ark:cat {tmp_path}/missing.ark |"))
    with pytest.raises(SidError, match="failed with status 3"):
        with TableWriter("ark:| cat > /dev/null; exit 3") as w:
            w.write("a", np.ones((2, 2), np.float32))


def test_writer_is_atomic_and_scp_points_into_final_ark(tmp_path):
    ark, scp = tmp_path / "f.ark", tmp_path / "f.scp"
    mats = {"a": np.ones((3, 2), np.float32), "b": np.zeros((1, 2), np.float32), "c": np.arange(3, dtype=np.float32)}
    with pytest.raises(RuntimeError):
        with TableWriter(f"ark,scp:{ark},{scp}") as w:
            w.write("a", mats["a"])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
    with TableWriter(f"ark,scp:{ark},{scp}") as w:
        for k, v in mats.items():
            w.write(k, v)
    assert f"{ark}:" in scp.read_text()
    back = kaldiio.load_scp(str(scp))
    for k, v in mats.items():
        np.testing.assert_array_equal(back[k], v)
    with pytest.raises(SidError, match="whitespace"):
        with TableWriter(f"ark:{tmp_path / 'g.ark'}") as w:
            w.write("a b", mats["a"])


def test_archive_is_renamed_before_its_scp(tmp_path, monkeypatch):
    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append(os.path.basename(b)), real(a, b)))
    kaldi_io.write_vectors(f"ark,scp:{tmp_path}/x.ark,{tmp_path}/x.scp", ["a"], np.ones((1, 3), np.float32))
    with TableWriter(f"ark,scp:{tmp_path}/y.ark,{tmp_path}/y.scp") as w:
        w.write("a", np.ones((2, 3)))
    assert renamed == ["x.ark", "x.scp", "y.ark", "y.scp"]


def test_concurrent_writers_use_unique_temporary_names(tmp_path):
    a = TableWriter(f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp")
    b = TableWriter(f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp")
    a.write("x", np.ones((2, 2)))
    b.write("y", np.zeros((3, 2)))
    a.close()
    assert list(dict(read_matrices(f"scp:{tmp_path}/f.scp"))) == ["x"]
    b.close()
    assert list(dict(read_matrices(f"scp:{tmp_path}/f.scp"))) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.ark", "f.scp"]


def test_writer_writes_straight_into_special_files(tmp_path):
    import stat
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with TableWriter(f"ark:{fifo}") as w:
        w.write("a", np.ones((2, 2), np.float32))
    reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and got and got[0].startswith(b"a \0B")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_full_disk_is_a_clear_error_and_leaves_nothing(tiny_disk):
    (tiny_disk / "feats.scp").write_text("old\n")  # an earlier output stays as it was
    mats = _mats(n=40, rows=2000, cols=4)          # 1.3 MB: more than the disk holds
    with pytest.raises(DiskFullError) as err:
        with TableWriter(f"ark,scp:{tiny_disk}/feats.ark,{tiny_disk}/feats.scp") as w:
            for k, v in mats.items():
                w.write(k, v)
    msg = str(err.value)
    assert f"writing {tiny_disk}/feats.ark" in msg and f"{tiny_disk} (tmpfs" in msg and "free of 1.0 MiB" in msg
    assert "written so far" in msg
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["feats.scp"]
    assert (tiny_disk / "feats.scp").read_text() == "old\n"
    with pytest.raises(DiskFullError, match="utt2dur"):
        with ScalarWriter(f"ark,t:{tiny_disk}/utt2dur") as w:
            for i in range(200000):
                w.write(f"u{i}", 1.0)
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["feats.scp"]


def test_full_disk_in_a_tool_is_one_error_line(tiny_disk, sid_env, tmp_path):
    mats = _mats(n=40, rows=2000, cols=4)
    kaldiio.save_ark(str(tmp_path / "in.ark"), mats)
    res = subprocess.run([sys.executable, "-m", "sid.bin.copy_feats", f"ark:{tmp_path}/in.ark",
                          f"ark,scp:{tiny_disk}/out.ark,{tiny_disk}/out.scp"], env=sid_env, capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "ERROR (copy_feats" in res.stderr and "no space left on device" in res.stderr and str(tiny_disk) in res.stderr
    assert list(tiny_disk.iterdir()) == []


def test_vector_scp_blocks_mixed_archives_and_line_numbers(tmp_path):
    """An scp mixing two archives and a text entry reads the same whole and streamed in small
    blocks; a bad line in a later block is named by its line in the file."""
    rng = np.random.default_rng(0)
    vecs = {f"u{i}": rng.standard_normal(6).astype(np.float32) for i in range(7)}
    keys = list(vecs)
    kaldi_io.write_vectors(f"ark,scp:{tmp_path}/a.ark,{tmp_path}/a.scp", keys[:4], np.stack([vecs[k] for k in keys[:4]]))
    kaldi_io.write_vectors(f"ark,scp:{tmp_path}/b.ark,{tmp_path}/b.scp", keys[4:6], np.stack([vecs[k] for k in keys[4:6]]))
    kaldi_io.write_vectors(f"ark,t,scp:{tmp_path}/c.ark,{tmp_path}/c.scp", keys[6:], vecs[keys[6]][None])
    lines = ((tmp_path / "a.scp").read_text().splitlines() + (tmp_path / "b.scp").read_text().splitlines()
             + (tmp_path / "c.scp").read_text().splitlines())
    scp = tmp_path / "all.scp"
    scp.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")  # a blank line too
    got_keys, got = kaldi_io.read_vectors(f"scp:{scp}")
    assert got_keys == keys
    np.testing.assert_allclose(got, np.stack([vecs[k] for k in keys]), atol=1e-6)
    blocks = list(kaldi_io.iter_vector_blocks(f"scp:{scp}", rows=2))
    assert [k for b, _ in blocks for k in b] == keys
    # Blocks may share one buffer: compare each as it came.
    for block_keys, block in kaldi_io.iter_vector_blocks(f"scp:{scp}", rows=2):
        np.testing.assert_allclose(block, np.stack([vecs[k] for k in block_keys]), atol=1e-6)
    scp.write_text("\n".join(lines[:5]) + "\nlonely\n")
    for read in (lambda: kaldi_io.read_vectors(f"scp:{scp}"), lambda: list(kaldi_io.iter_vector_blocks(f"scp:{scp}", 2))):
        with pytest.raises(SidError, match=r"all.scp:6: key 'lonely' has no value"):
            read()


def test_scp_blocks_parsed_by_numpy_equal_the_lines(tmp_path):
    """Blocks of ``key archive:offset`` lines (the usual scp) are parsed by numpy; anything else
    (two archives, a leading zero, a non-ASCII key, a blank line, a tab) line by line: the
    same keys, line numbers and offsets either way, across the 256 kB reads."""
    import io

    keys = [f"spk{i % 7}-utt{'x' * (i % 5)}{i}" for i in range(9000)]  # ~260 kB: two reads
    lines = [f"{k} /data/a.ark:{10 + 37 * i}" for i, k in enumerate(keys)]
    variants = {"usual": lines, "no final newline": lines,
                "two archives": lines[:5] + [f"{keys[5]} /data/b.ark:12"] + lines[6:],
                "leading zero": lines[:3] + [f"{keys[3]} /data/a.ark:0121"] + lines[4:],
                "non-ASCII key": lines[:2] + ["é-u /data/a.ark:88"] + lines[3:],
                "tab": lines[:1] + [lines[1].replace(" ", "\t")] + lines[2:],
                "blank line": lines[:8000] + [""] + lines[8000:]}
    for name, rows in variants.items():
        text = "\n".join(rows) + ("" if name == "no final newline" else "\n")
        got = list(kaldi_io._scp_chunks(io.BytesIO(text.encode()), "x.scp", 1000))
        expect = [(n, line.split()[0], line.split()[1]) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        assert [n for c in got for n in c[0]] == [e[0] for e in expect], name
        assert [k for c in got for k in c[1]] == [e[1] for e in expect], name
        values = [c[2][i] for c in got for i in range(len(c[1]))]
        archives = [(c[3][0], o) for c in got for o in c[3][1].tolist()]
        for (_, _, value), v, (archive, offset) in zip(expect, values, archives):
            path, _, digits = value.rpartition(":")
            assert v == value or (name == "leading zero" and int(v.rpartition(":")[2]) == int(digits)), name
            assert offset == (int(digits) if path == archive else -1), name
        assert all(len(c[1]) <= 1000 for c in got)
        if name in ("usual", "no final newline"):  # whole blocks across the reads
            assert [len(c[1]) for c in got] == [1000] * 9
        # The first read's block took the numpy path unless an odd line is in it.
        assert isinstance(got[0][2], kaldi_io._ArchiveValues) == (name in ("usual", "no final newline", "blank line"))


def test_read_token_map(tmp_path):
    (tmp_path / "utt2spk").write_text("a s1\nb s2\nc s1\n")
    assert kaldi_io.read_token_map(f"ark:{tmp_path}/utt2spk") == {"a": "s1", "b": "s2", "c": "s1"}
    (tmp_path / "odd").write_text("a s1\n\nb s2 extra\n")  # not two tokens a line: the general reader
    assert kaldi_io.read_token_map(str(tmp_path / "odd")) == {"a": "s1", "b": "s2"}
    (tmp_path / "bad").write_text("a s1\nb\n")
    with pytest.raises(SidError, match="bad:2: key 'b' has no value"):
        kaldi_io.read_token_map(str(tmp_path / "bad"))
