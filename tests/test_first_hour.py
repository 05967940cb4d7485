"""What a new user meets first: the recipes check their corpora and a stage's inputs before
doing any work, naming the option to pass or the stage that makes what is missing."""

import subprocess


def run(args, cwd, env):
    return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)


def test_voxceleb_recipe_names_the_missing_corpus_option(tmp_path, repo, sid_env):
    for args, option in (([], "--voxceleb1-root"),
                         (["--voxceleb1-root", tmp_path], "--voxceleb2-root"),
                         (["--stage", "2", "--musan-root", tmp_path / "no-musan"], "--musan-root")):
        r = run([repo / "run.sh", *args], repo, sid_env)
        assert r.returncode == 1 and f"{option} " in r.stderr and "no such directory" in r.stderr, (args, r.stderr)
        assert "stage" not in r.stdout  # nothing started


def test_voxceleb_stage_without_its_inputs_names_the_stage(tmp_path, repo, sid_env):
    r = run([repo / "run.sh", "--stage", "4", "--stop-stage", "4"], repo, sid_env)
    assert r.returncode == 1 and "data/train_combined_no_sil/feats.scp is missing: stage 3 makes it" in r.stderr


def test_speechocean_recipe_checks_corpus_and_stage_inputs(tmp_path, repo, sid_env):
    recipe = repo / "egs/speechocean762/run.sh"
    r = run([recipe, "--corpus", tmp_path / "nothing"], tmp_path, sid_env)
    assert r.returncode == 1 and f"--corpus {tmp_path / 'nothing'}: no train/ there" in r.stderr
    (tmp_path / "corpus/train").mkdir(parents=True)
    r = run([recipe, "--corpus", tmp_path / "corpus", "--data", tmp_path / "data", "--exp", tmp_path / "exp",
             "--stage", "3"], tmp_path, sid_env)
    assert r.returncode == 1 and f"{tmp_path}/data/train_no_sil/.done is missing: stage 2 makes it" in r.stderr
    assert not (tmp_path / "exp").exists()


def test_recipe_help_prints_defaults_before_any_set_up(tmp_path, repo, sid_env):
    r = run([repo / "egs/speechocean762/run.sh", "--help"], tmp_path, sid_env)
    assert r.returncode == 0 and "\nDefaults:\n" in r.stdout
    assert "  --num-test-speakers      25\n" in r.stdout and "  --config                 conf/xvector_small.yaml\n" in r.stdout
