"""Shared fixtures. ``shared`` is ../shared beside the checkout (or $SID_SHARED);
tests that need it skip with a reason where it is absent, as in a user's clone."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SID_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "README.md").exists():
        pytest.skip(f"needs the shared data folder at {SHARED} (absent in a user's clone; set SID_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def corpus(shared) -> Path:
    """The real speechocean762 corpus (16 kHz Ogg/Opus)."""
    return shared / "corpora" / "speechocean762"


@pytest.fixture(scope="session")
def kaldi_ref(shared) -> Path:
    """Outputs of Kaldi's own binaries, for parity tests."""
    return shared / "reference" / "kaldi"


@pytest.fixture()
def sid_env() -> dict:
    """Environment for running the project's shell scripts and ``python -m sid.bin.*`` in a subprocess."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), str(REPO / "utils"), str(REPO / "steps"), env.get("PATH", "")])
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["LC_ALL"] = "C"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (root only); skipped with the reason where it cannot be mounted."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({res.stderr.strip() or 'mount failed'}; needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
