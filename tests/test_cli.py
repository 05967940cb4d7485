import subprocess

import pytest

from sid.cli import KaldiOptions


def make():
    po = KaldiOptions("Usage: tool [options] <in> <out>")
    po.register("frame-shift", 10.0, "shift")
    po.register("num-mel-bins", 23, "bins")
    po.register("snip-edges", True, "snip")
    po.register("window-type", "povey", "window")
    return po


def test_values_types_and_config(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("# comment\n--num-mel-bins=80  # trailing\n--snip-edges=false\n")
    opts, args = make().parse([f"--config={conf}", "--frame-shift=12.5", "in", "out"], num_args=2)
    assert (opts.num_mel_bins, opts.snip_edges, opts.frame_shift, opts.window_type) == (80, False, 12.5, "povey")
    assert args == ["in", "out"]
    # later command-line options override the config, as in Kaldi
    opts, _ = make().parse([f"--config={conf}", "--num-mel-bins=40", "a", "b"])
    assert opts.num_mel_bins == 40


def test_bare_boolean_and_underscore_names():
    opts, _ = make().parse(["--snip_edges", "x"])
    assert opts.snip_edges is True


@pytest.mark.parametrize("argv,msg", [
    (["--bogus=1", "a", "b"], "invalid option --bogus"),
    (["--num-mel-bins=x", "a", "b"], "invalid value for --num-mel-bins"),
    (["--num-mel-bins", "a", "b"], "needs a value"),
    (["a"], "expected 2 arguments, got 1"),
])
def test_errors_exit_1_with_message(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        make().parse(argv, num_args=2)
    assert e.value.code == 1
    assert msg in capsys.readouterr().err


def test_parse_options_sh(tmp_path, repo):
    script = tmp_path / "t.sh"
    script.write_text(
        "#!/usr/bin/env bash\n# Usage: t.sh [opts] <a>\n# second header line\nnj=1\nfbank_config=x\nuse_gpu=false\n"
        f". {repo}/utils/parse_options.sh\n"
        'echo "$nj|$fbank_config|$use_gpu|$*"\n')
    conf = tmp_path / "c.conf"
    conf.write_text("nj=5\n")

    def run(*args):
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)

    assert run("--nj", "8", "--fbank-config=y.conf", "--use-gpu", "true", "p", "q").stdout == "8|y.conf|true|p q\n"
    assert run("--config", str(conf), "z").stdout == "5|x|false|z\n"
    # The command line wins over a config file wherever it stands (Kaldi reads configs first).
    assert run("--nj", "7", "--config", str(conf), "z").stdout == "7|x|false|z\n"
    r = run("--help")
    assert r.returncode == 0 and r.stdout == "Usage: t.sh [opts] <a>\nsecond header line\n"
    # Options the header names are listed with their defaults.
    script.write_text(script.read_text().replace("# second header line", "#   --nj N  jobs\n#   --use-gpu B"))
    r = run("--help")
    assert r.returncode == 0 and r.stdout.endswith("\nDefaults:\n  --nj                     1\n"
                                                   "  --use-gpu                false\n"), r.stdout
    r = run("--no-such", "1")
    assert r.returncode == 1 and "--no-such" in r.stderr
    r = run("--use-gpu", "maybe")
    assert r.returncode == 1 and "true or false" in r.stderr


def test_parse_options_config_variable_of_the_script(tmp_path, repo):
    # A recipe with its own `config` variable (the model YAML) gets it set, not sourced.
    script = tmp_path / "r.sh"
    script.write_text(f"config=conf/a.yaml\nnj=1\n. {repo}/utils/parse_options.sh\necho \"$config|$nj\"\n")
    r = subprocess.run(["bash", str(script), "--config", "conf/b.yaml", "--nj", "3"], capture_output=True, text=True)
    assert r.stdout == "conf/b.yaml|3\n", r.stderr


def _tools():
    import pkgutil

    import sid.bin

    return sorted(m.name for m in pkgutil.iter_modules(sid.bin.__path__))


@pytest.mark.parametrize("tool", _tools())
def test_every_tool_help_has_one_form(tool, capsys, monkeypatch):
    """Usage line first, then the description, then Options; exit 0; nothing else printed."""
    import runpy
    import sys

    monkeypatch.setattr(sys, "argv", [tool, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(f"sid.bin.{tool}", run_name="__main__")
    out, err = capsys.readouterr()
    assert exit_.value.code in (0, None) and err == ""
    assert out.startswith("Usage: ") and "\nOptions:\n" in out, out[:300]
    assert "--help" not in out.splitlines()[0]


def test_step_scripts_help_does_not_echo_the_command_line(repo, sid_env):
    for script in sorted((repo / "steps").glob("*.sh")):
        r = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, env=sid_env, cwd=repo)
        assert r.returncode == 0 and r.stdout.startswith("Usage: steps/") and "--help" not in r.stdout + r.stderr, \
            (script, r.stdout[:200], r.stderr[:200])


@pytest.mark.parametrize("recipe", ["run.sh", "egs/speechocean762/run.sh"])
def test_recipes_are_read_whole_before_they_run(repo, recipe):
    # bash reads a script as it executes it; only a body inside one brace group is parsed whole
    # first, so that editing run.sh during a long stage cannot change what the running recipe does.
    lines = (repo / recipe).read_text().rstrip("\n").split("\n")
    opening = lines.index("{")
    assert lines[-2:] == ["exit", "}"]
    body = lines[:opening]
    assert not any(line.startswith(("set -", "stage=", ". utils/parse_options.sh", '. "$here/utils/parse_options.sh"'))
                   for line in body), f"{recipe}: commands before the brace group"
    assert subprocess.run(["bash", "-n", str(repo / recipe)]).returncode == 0
