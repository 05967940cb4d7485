"""filter_scp: keep (or with --exclude drop) the lines of a table whose key is in an id list.

Like Kaldi's filter_scp.pl: the ids are the first field of each line of <id-list>;
lines are matched on field -f (1-based, default 1) and printed in input order.
"""

import sys

from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

USAGE = """Usage: filter_scp [--exclude] [-f <field>] <id-list> [<in.scp>] > <out.scp>
<in.scp> defaults to stdin; '-' for <id-list> reads it from stdin.
 e.g.: filter_scp data/dev/utt2spk data/all/feats.scp > data/dev/feats.scp"""


def _open(path: str):
    try:
        return sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as err:
        raise SidError(f"{path}: {err.strerror}") from None


def main() -> int:
    argv = sys.argv[1:]
    field = 1
    # Kaldi's short form '-f N' (and '-fN') is not a --name=value option.
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "-f" and i + 1 < len(argv):
            field, i = argv[i + 1], i + 2
        elif argv[i].startswith("-f") and argv[i][2:].lstrip("-").isdigit():
            field, i = argv[i][2:], i + 1
        else:
            rest.append(argv[i])
            i += 1
    po = KaldiOptions(USAGE)
    po.register("exclude", False, "Print the lines whose key is NOT in the id list")
    opts, args = po.parse(rest, num_args=(1, 2))
    try:
        field = int(field)
        if field == 0:
            raise ValueError
    except ValueError:
        print(po.help_text(), file=sys.stderr)
        raise SidError(f"-f needs a non-zero field number, got '{field}'") from None
    with _open(args[0]) as f:
        ids = {line.split(None, 1)[0] for line in f if line.strip()}
    inp = _open(args[1]) if len(args) > 1 else sys.stdin
    idx = field - 1 if field > 0 else field
    exclude = opts.exclude
    out = sys.stdout
    with inp:
        for lineno, line in enumerate(inp, 1):
            fields = line.split()
            try:
                key = fields[idx]
            except IndexError:
                raise SidError(f"{getattr(inp, 'name', '<stdin>')}:{lineno}: has no field {field}") from None
            if (key in ids) != exclude:
                out.write(line)
    return 0


if __name__ == "__main__":
    run_main(main)
