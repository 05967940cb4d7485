"""tools/setup_env.sh with stand-in python and pip: it installs when pyproject.toml's content (or the
checkout) changed, not when only its time did, and two set-ups started together install once, one
after the other."""

from __future__ import annotations

import shutil
import subprocess
import time


def _tree(tmp_path, repo):
    (tmp_path / "tools").mkdir()
    shutil.copy(repo / "tools/setup_env.sh", tmp_path / "tools/setup_env.sh")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'sid'\n")
    bin_dir = tmp_path / ".venv/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("#!/bin/sh\nexit 0\n")   # 'import torch' succeeds
    # pip: logs its call; a second pip running at the same time is logged as an overlap.
    (bin_dir / "pip").write_text(f"""#!/bin/sh
[ -e {tmp_path}/busy ] && echo overlap >> {tmp_path}/pip.log
touch {tmp_path}/busy; sleep 0.5; rm -f {tmp_path}/busy
echo "$*" >> {tmp_path}/pip.log
""")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return tmp_path


def _calls(tree) -> list[str]:
    log = tree / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


def test_installs_on_content_change_once_and_one_at_a_time(tmp_path, repo):
    tree = _tree(tmp_path, repo)
    script = str(tree / "tools/setup_env.sh")
    assert subprocess.run(["bash", script], capture_output=True).returncode == 0
    assert len(_calls(tree)) == 1 and f"-e {tree}[test]" in _calls(tree)[0]
    subprocess.run(["bash", script], check=True, capture_output=True)
    time.sleep(0.01)
    (tree / "pyproject.toml").touch()          # a checkout that rewrote it unchanged
    subprocess.run(["bash", script], check=True, capture_output=True)
    assert len(_calls(tree)) == 1
    (tree / "pyproject.toml").write_text("[project]\nname = 'sid'\nversion = '2'\n")
    runs = [subprocess.Popen(["bash", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [r.wait() for r in runs] == [0, 0]
    assert "overlap" not in _calls(tree) and len(_calls(tree)) == 2
