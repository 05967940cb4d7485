#!/usr/bin/env python3
"""Usage: local/prepare_rirs.py [--rooms smallroom,mediumroom] <RIRS_NOISES-root> <out-dir>

Writes <out-dir>/<room>/rir_list for each simulated room size of the RIRS_NOISES
layout (<root>/simulated_rirs/<room>/Room*/Room*-*.wav with its rir_list), in
the same '--rir-id X --room-id Y <file>' form but with absolute file paths, so
sid.bin.reverberate_data_dir finds them from any directory. A room without a
rir_list gets one from its Room*/*.wav files. A missing file is an error counting
and naming them.
e.g. local/prepare_rirs.py /data/RIRS_NOISES data/rirs
"""

import logging
import shlex
from pathlib import Path

from sid.augment.datadir import parse_rir_line
from sid.cli import doc_argparser, run_main, setup_logging
from sid.data.table import atomic_path
from sid.errors import DataDirError, SidError


def read_list(root: Path, rir_list: Path) -> list[tuple[str, str, Path]]:
    """``(rir_id, room_id, absolute file)``; list paths like RIRS_NOISES/simulated_rirs/... are
    taken from 'simulated_rirs' on, below ``root``, whatever the folder was renamed to."""
    out = []
    with open(rir_list, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            opts, spec = parse_rir_line(line)
            if not spec or " " in spec or "--rir-id" not in opts or "--room-id" not in opts:
                raise DataDirError(f"{rir_list}:{lineno}: expected '--rir-id <id> --room-id <room> <file>', "
                                   f"got '{line.strip()}'")
            parts = Path(spec).parts
            rel = Path(*parts[parts.index("simulated_rirs"):]) if "simulated_rirs" in parts else Path(spec)
            out.append((opts["--rir-id"], opts["--room-id"], (root / rel).resolve()))
    return out


def main():
    ap = doc_argparser(__doc__)
    ap.add_argument("--rooms", default="smallroom,mediumroom", help="comma-separated simulated_rirs subfolders")
    ap.add_argument("root")
    ap.add_argument("out_dir")
    args = ap.parse_args()
    setup_logging()
    root = Path(args.root).resolve()
    for room in args.rooms.split(","):
        room_dir = root / "simulated_rirs" / room
        if not room_dir.is_dir():
            raise SidError(f"{room_dir}: no such directory (expected the RIRS_NOISES layout)")
        if (room_dir / "rir_list").is_file():
            rirs = read_list(root, room_dir / "rir_list")
        else:
            rirs = [(w.stem, w.parent.name, w.resolve()) for w in sorted(room_dir.glob("*/*.wav"))]
        if not rirs:
            raise SidError(f"{room_dir}: no RIRs (no rir_list and no Room*/*.wav)")
        missing = [str(p) for _, _, p in rirs if not p.is_file()]
        if missing:
            more = ", ..." if len(missing) > 5 else ""
            raise SidError(f"{room_dir}: {len(missing)} of {len(rirs)} RIR files are missing: "
                           f"{', '.join(missing[:5])}{more}")
        with atomic_path(Path(args.out_dir) / room / "rir_list") as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(f"--rir-id {r} --room-id {m} {shlex.quote(str(p))}\n" for r, m, p in rirs)
        logging.info("%s: %d RIRs", room, len(rirs))


if __name__ == "__main__":
    run_main(main)
