"""get_utt2dur: write <data-dir>/utt2dur, each utterance's duration in seconds.

With segments the durations come from segments (end - start; an end of -1 or 0
means the recording's end, whose duration is then read). Otherwise each wav.scp
entry's duration is read from its header where the format allows (wav, flac,
ogg/opus through soundfile; m4a/aac/mp3 through the container), decoding pipes and
headerless audio, in --nj worker processes.
"""

import logging
import multiprocessing as mp

from sid.cli import KaldiOptions, progress, run_main
from sid.data.audio import audio_duration
from sid.data.datadir import DataDir, write_lines
from sid.errors import AudioError, DataDirError, SidError

USAGE = """Usage: get_utt2dur [options] <data-dir>
 e.g.: get_utt2dur --nj=8 data/train"""

log = logging.getLogger("get_utt2dur")


def _one(job):
    key, spec, read_entire_file = job
    try:
        return key, audio_duration(spec, utt=key, read_entire_file=read_entire_file), None
    except AudioError as err:
        return key, None, str(err)


def durations(items: list[tuple[str, str]], nj: int, read_entire_file: bool) -> dict[str, float]:
    """key -> seconds for ``(key, wav.scp value)`` pairs; every failure is reported, then an error."""
    jobs = [(k, v, read_entire_file) for k, v in items]
    out: dict[str, float] = {}
    errors = []
    bar = progress(total=len(jobs), desc="utt2dur", unit="file", disable=len(jobs) < 1000)
    if nj > 1 and len(jobs) > 1:
        with mp.get_context("fork").Pool(nj) as pool:
            results = pool.imap(_one, jobs, chunksize=max(1, min(256, len(jobs) // (nj * 8) or 1)))
            for key, dur, err in results:
                bar.update()
                (errors.append(err) if err else out.__setitem__(key, dur))
    else:
        for job in jobs:
            key, dur, err = _one(job)
            bar.update()
            (errors.append(err) if err else out.__setitem__(key, dur))
    bar.close()
    if errors:
        for e in errors:
            log.error("%s", e)
        raise SidError(f"could not get the duration of {len(errors)} of {len(jobs)} recordings")
    return out


def format_seconds(seconds: float) -> str:
    return f"{seconds:.4f}".rstrip("0").rstrip(".")


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("nj", 4, "Number of parallel worker processes")
    po.register("read-entire-file", False, "Decode every file instead of trusting headers")
    opts, (data,) = po.parse(num_args=1)
    d = DataDir(data)
    if not d.has("wav.scp") and not d.has("segments"):
        raise DataDirError(f"{d.path}: needs wav.scp (or segments) to get durations")
    lines = []
    if d.has("segments"):
        seg = d.table("segments")
        _, recs = d.segment_recordings()
        rows = []
        for i, line in enumerate(seg.lines):
            f = line.split()
            try:
                rows.append((seg.keys[i], recs[i], float(f[2]), float(f[3])))
            except ValueError:
                raise DataDirError(f"{seg.path}:{seg.lineno(i)}: start and end must be numbers") from None
        open_ended = {rec for _, rec, _, end in rows if end <= 0}
        rec_dur = {}
        if open_ended:
            wav_table = d.table("wav.scp")
            wav = dict(zip(wav_table.keys, wav_table.values()))
            missing = sorted(open_ended - wav.keys())
            if missing:
                raise DataDirError(f"{d.file('wav.scp')}: no recording '{missing[0]}' named in segments")
            rec_dur = durations([(r, wav[r]) for r in sorted(open_ended)], opts.nj, opts.read_entire_file)
        for utt, rec, start, end in rows:
            lines.append(f"{utt} {format_seconds((end if end > 0 else rec_dur[rec]) - start)}")
    else:
        wav = d.table("wav.scp")
        dur = durations(list(zip(wav.keys, wav.values())), opts.nj, opts.read_entire_file)
        lines = [f"{k} {format_seconds(dur[k])}" for k in wav.keys]
    write_lines(d.file("utt2dur"), lines)
    log.info("wrote %s (%d utterances)", d.file("utt2dur"), len(lines))
    return 0


if __name__ == "__main__":
    run_main(main)
