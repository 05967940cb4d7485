"""results_table: a run's results.json as the Markdown tables of RESULTS.md.

Usage: python -m sid.bin.results_table [options] <results-json>
 e.g.: python -m sid.bin.results_table --update=RESULTS.md --name=speechocean762 egs/speechocean762/exp/results.json
One table per trials list (back-end, EER in %, each minDCF, then Cllr and the actual DCF at
the calibrated threshold where the run has them), then the line "Measured
at commit C on D." (C: --commit, by default the checkout's; D: --date, by default
today, UTC). With --update=FILE the tables replace what stands in FILE between the
lines "<!-- results: NAME -->" and "<!-- /results: NAME -->" (NAME from --name), so
the document holds what the run printed; without it they are printed.
"""

import datetime
import json
import os
import re
import subprocess

from sid.cli import KaldiOptions, run_main
from sid.data.table import atomic_path
from sid.errors import SidError

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


def _split(backend: str) -> tuple[str, str]:
    """(model, back-end) of a results.json back-end name: a second model's rows are named
    <model>_<backend> (steps/compute_metrics.sh --backend-prefix)."""
    for base in sorted(BACKENDS, key=len, reverse=True):
        if backend.endswith("_" + base):
            return backend[:-len(base) - 1], base
    return "", backend


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        r = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        r = None
    if r is None or r.returncode != 0:
        raise SidError("cannot tell the commit (not a git checkout?): pass --commit")
    dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + ("+changes" if dirty else "")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("update", "", "Markdown file whose marked block the tables replace (else they are printed)")
    po.register("name", "", "Name of the block in --update's file")
    po.register("commit", "", "Commit the run was made at (default: this checkout's HEAD)")
    po.register("date", "", "Date the run was made on (default: today, UTC)")
    opts, (path,) = po.parse(num_args=1)
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as err:
        raise SidError(f"{path}: cannot read results ({err})") from None
    if not isinstance(results, dict) or not results:
        raise SidError(f"{path}: no results in it")
    text = tables(results, opts.commit or git_commit(),
                  opts.date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
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
