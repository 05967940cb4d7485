"""results_table: a run's results.json as the Markdown tables of RESULTS.md.

Usage: python -m sid.bin.results_table [options] <results-json>
       python -m sid.bin.results_table --per-exp=true [options] <recipe-exp-dir> [<recipe-exp-dir> ...]
 e.g.: python -m sid.bin.results_table --update=RESULTS.md --name=speechocean762 egs/speechocean762/exp/results.json
       python -m sid.bin.results_table --per-exp=true --update=RESULTS.md --name=families egs/speechocean762/exp/*_cpu
One table per trials list (back-end, EER in %, each minDCF, then Cllr and the actual DCF at
the calibrated threshold where the run has them), then the line "Measured
at commit C on D." (C: --commit, by default the checkout's; D: --date, by default
today, UTC). With --update=FILE the tables replace what stands in FILE between the
lines "<!-- results: NAME -->" and "<!-- /results: NAME -->" (NAME from --name), so
the document holds what the run printed; without it they are printed.

With --per-exp=true: one table, a row per recipe exp dir (run.sh --exp), in the order given:
its model and input and what training recorded (<dir>/<--model-dir>/config.yaml and
training.json: parameters, loss, batch, steps, the first step's loss and the last epoch's mean,
training CPU minutes, the commit it finished at), then the EER and the minDCF at the first p-target of each back-end in
<dir>/results.json (trials list --trials; the run's only one by default).
"""

import datetime
import json
import os
import re

from sid.cli import KaldiOptions, run_main
from sid.data.table import atomic_path
from sid.errors import SidError
from sid.provenance import code_commit

BACKENDS = {"cosine": "cosine", "cosine_asnorm": "cosine + AS-norm",
            "cosine_asnorm_qmf": "cosine + AS-norm + QMF", "plda": "LDA + PLDA"}


def tables(results: dict, commit: str, date: str) -> str:
    out = []
    for name in sorted(results):
        entries = results[name]
        # In the order compute_metrics wrote them (its --p-targets).
        def keyed(prefix):
            return list(dict.fromkeys(k.split("_", 1)[1] for e in entries.values() for k in e if k.startswith(prefix)))
        p_targets, act_targets = keyed("mindcf_"), keyed("actdcf_")
        cllr = any("cllr" in e for e in entries.values())
        if len(results) > 1:
            out += [f"Trials `{name}` ({next(iter(entries.values())).get('num_trials', '?')} trials):", ""]
        columns = ([f"minDCF p={p}" for p in p_targets] + (["Cllr"] if cllr else [])
                   + [f"actDCF p={p}" for p in act_targets])
        out.append("| back-end | EER (%) | " + " | ".join(columns) + " |")
        out.append("|---|---|" + "---|" * len(columns))
        order = sorted(entries, key=lambda b: (_split(b)[0], list(BACKENDS).index(_split(b)[1])
                                               if _split(b)[1] in BACKENDS else len(BACKENDS), b))
        for backend in order:
            e = entries[backend]
            keys = ([f"mindcf_{p}" for p in p_targets] + (["cllr"] if cllr else [])
                    + [f"actdcf_{p}" for p in act_targets])
            cells = " | ".join(f"{e[k]:.4f}" if k in e else "" for k in keys)
            prefix, base = _split(backend)
            out.append(f"| {prefix + ': ' if prefix else ''}{BACKENDS.get(base, base)} | {e['eer']:.4g} | {cells} |")
        out.append("")
    out.append(f"Measured at commit {commit} on {date}.")
    return "\n".join(out)


def exp_table(dirs: list[str], model_dir: str, trials: str, commit: str, date: str) -> str:
    from sid.config import load_config

    rows, backends, p_target = [], None, None
    for d in dirs:
        results = _read_json(os.path.join(d, "results.json"), "results")
        if not trials and len(results) != 1:
            raise SidError(f"{d}/results.json has trials lists {', '.join(sorted(results))}: choose one with --trials")
        name = trials or next(iter(results))
        if name not in results:
            raise SidError(f"{d}/results.json has no trials list '{name}' (it has {', '.join(sorted(results))})")
        entries = {b: e for b, e in results[name].items() if not _split(b)[0]}
        if backends is None:
            backends = [b for b in BACKENDS if b in entries] + sorted(b for b in entries if b not in BACKENDS)
            p_target = next((k.split("_", 1)[1] for k in entries[backends[0]] if k.startswith("mindcf_")), None)
        missing = [b for b in backends if b not in entries]
        if missing:
            raise SidError(f"{d}/results.json: no back-end {', '.join(missing)} in trials list '{name}' "
                           f"(the first dir's table has it)")
        model = os.path.join(d, model_dir)
        cfg = load_config(os.path.join(model, "config.yaml"), recorded=True)
        rec = _read_json(os.path.join(model, "training.json"), "training record")
        what = cfg.model.type + (f" {cfg.model.args['variant']}" if "variant" in cfg.model.args else "")
        fe = cfg.frontend
        feats = cfg.features.type if fe is None else f"{fe.type} {fe.frame_samples if fe.type == 'waveform' else fe.num_mel_bins}"
        source = "audio" if cfg.data.source == "audio" else "features"
        batch = (f"{cfg.data.speakers_per_batch} x {cfg.data.utts_per_speaker}" if cfg.data.sampler == "speaker_balanced"
                 else str(rec["batch_size"]))
        losses = rec["epoch_losses"]
        cells = [f"`{os.path.basename(os.path.normpath(d))}`", what, f"{feats} ({source})", f"{rec['parameters']:,}",
                 rec["loss"], batch, str(rec["steps"]), f"{rec['first_loss']:.3f} -> {losses[-1]:.3f}",
                 f"{rec['cpu_seconds'] / 60:.1f}", rec.get("commit") or "not recorded"]
        cells += [f"{entries[b]['eer']:.4g}" for b in backends]
        cells += [f"{entries[b]['mindcf_' + p_target]:.4f}" if f"mindcf_{p_target}" in entries[b] else ""
                  for b in backends]
        rows.append("| " + " | ".join(cells) + " |")
    columns = (["exp", "model", "input", "params", "loss", "batch", "steps", "loss: step 1 -> last epoch",
                "train CPU (min)", "trained at"] + [f"EER {BACKENDS.get(b, b)}" for b in backends]
               + [f"minDCF{p_target} {BACKENDS.get(b, b)}" for b in backends])
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows, "",
                      f"Measured at commit {commit} on {date}."])


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as err:
        raise SidError(f"{path}: cannot read {what} ({err})") from None
    if not isinstance(value, dict) or not value:
        raise SidError(f"{path}: no {what} in it")
    return value


def _split(backend: str) -> tuple[str, str]:
    """(model, back-end) of a results.json back-end name: a second model's rows are named
    <model>_<backend> (steps/compute_metrics.sh --backend-prefix)."""
    for base in sorted(BACKENDS, key=len, reverse=True):
        if backend.endswith("_" + base):
            return backend[:-len(base) - 1], base
    return "", backend


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("update", "", "Markdown file whose marked block the tables replace (else they are printed)")
    po.register("name", "", "Name of the block in --update's file")
    po.register("commit", "", "Commit the run was made at (default: this checkout's HEAD)")
    po.register("date", "", "Date the run was made on (default: today, UTC)")
    po.register("per-exp", False, "Arguments are recipe exp dirs: one row each (model, training, each back-end's EER)")
    po.register("model-dir", "xvector", "With --per-exp: the trained model's dir inside each exp dir")
    po.register("trials", "", "With --per-exp: the trials list of results.json (default: its only one)")
    opts, args = po.parse(num_args=(1, 1 << 30))
    if not opts.per_exp and len(args) != 1:
        raise SidError(f"expected one results.json, got {len(args)} arguments (several exp dirs go with --per-exp=true)")
    commit = opts.commit or code_commit()
    if not commit:
        raise SidError("cannot tell the commit (not a git checkout?): pass --commit")
    date = opts.date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    if opts.per_exp:
        text = exp_table(args, opts.model_dir, opts.trials, commit, date)
    else:
        text = tables(_read_json(args[0], "results"), commit, date)
    if not opts.update:
        print(text)
        return 0
    if not opts.name:
        raise SidError("--update needs --name (the block's name)")
    try:
        with open(opts.update, encoding="utf-8") as f:
            doc = f.read()
    except OSError as err:
        raise SidError(f"{opts.update}: {err.strerror}") from None
    begin, end = f"<!-- results: {opts.name} -->", f"<!-- /results: {opts.name} -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        raise SidError(f"{opts.update}: no block '{begin}' ... '{end}' to replace")
    doc = pattern.sub(lambda _: f"{begin}\n{text}\n{end}", doc, count=1)
    with atomic_path(opts.update) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
    print(f"updated {opts.update} ({opts.name})")
    return 0


if __name__ == "__main__":
    run_main(main)
