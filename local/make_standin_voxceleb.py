#!/usr/bin/env python3
"""Usage: local/make_standin_voxceleb.py [options] <speechocean762-root> <out-dir>

Lays out miniature stand-ins of everything the VoxCeleb recipe reads, from a
Kaldi-style corpus (wav.scp, utt2spk, spk2gender under train/), so that run.sh
runs end to end without the real downloads:
  <out-dir>/voxceleb1/wav/idXXXXX/<video>/NNNNN.wav    (16-bit wav; test speakers id10270..)
  <out-dir>/voxceleb1/vox1_meta.csv                     (tab-separated, as the official one)
  <out-dir>/voxceleb2/{dev,test}/aac/idXXXXX/<video>/NNNNN.m4a   (AAC encoded with PyAV)
  <out-dir>/voxceleb2/vox2_meta.csv
  <out-dir>/lists/veri_test.txt, veri_test2.txt, list_test_all(2).txt, list_test_hard(2).txt
                                                        (official format '1|0 path1 path2')
  <out-dir>/musan/{noise,music,speech}/<subset>/*.wav   (coloured noise, tone mixtures,
                                                        speech of corpus speakers not used above)
  <out-dir>/RIRS_NOISES/simulated_rirs/{smallroom,mediumroom}/RoomNNN/*.wav + rir_list
                                                        (exponentially decaying synthetic RIRs)
Speakers are renamed to VoxCeleb ids and their utterances dealt into pseudo-videos.
The "cleaned" lists leave out the trials of one file, as the official ones do.
The tree appears only when complete.
"""

import base64
import hashlib
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from sid.cli import doc_argparser, run_main, setup_logging
from sid.data.audio import read_audio
from sid.data.table import read_dict
from sid.errors import SidError

SAMPLE_RATE = 16000


def video_id(spk: str, k: int) -> str:
    """An 11-character YouTube-like id (letters, digits, '-', '_')."""
    return base64.urlsafe_b64encode(hashlib.sha1(f"{spk}/{k}".encode()).digest()).decode()[:11]


def write_m4a(path: Path, samples: np.ndarray) -> None:
    import av

    pcm = np.clip(np.round(samples), -32768, 32767).astype(np.int16)[None, :]
    with av.open(str(path), "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def write_wav(path: Path, samples: np.ndarray) -> None:
    sf.write(path, np.clip(np.round(samples), -32768, 32767).astype(np.int16), SAMPLE_RATE, subtype="PCM_16")


def lay_out_speakers(corpus: Path, spk2utt: dict, speakers: list[tuple[str, str]], audio_root: Path, ext: str,
                     utts_per_spk: int, videos_per_spk: int, wav: dict) -> list[str]:
    """Copy ``(source speaker, new id)`` pairs' audio into ``audio_root``; returns the relative paths."""
    rels = []
    for src, new in speakers:
        counters = [0] * videos_per_spk
        for i, utt in enumerate(spk2utt[src][:utts_per_spk]):
            v = i % videos_per_spk
            counters[v] += 1
            rel = f"{new}/{video_id(new, v)}/{counters[v]:05d}.{ext}"
            (audio_root / rel).parent.mkdir(parents=True, exist_ok=True)
            samples, _ = read_audio(str(corpus / wav[utt]), utt=utt, sample_rate=SAMPLE_RATE, resample=True)
            (write_m4a if ext == "m4a" else write_wav)(audio_root / rel, samples)
            rels.append(rel)
    return rels


def write_trials(path: Path, trials: list[tuple[int, str, str]]) -> None:
    path.write_text("".join(f"{lab} {a} {b}\n" for lab, a, b in trials))


def make_lists(out: Path, test_rels: list[str], all_rels: list[str], gender: dict, rng: random.Random) -> None:
    spk = lambda rel: rel.split("/")[0]  # noqa: E731
    # Vox1-O: every pair of test utterances.
    o = [(int(spk(a) == spk(b)), a, b) for i, a in enumerate(test_rels) for b in test_rels[i + 1:]]
    # Vox1-E: each utterance against one same-speaker and one other-speaker utterance.
    # Vox1-H: as E, but the other speaker has the same gender.
    e, h = [], []
    for a in all_rels:
        same = [b for b in all_rels if spk(b) == spk(a) and b != a]
        other = [b for b in all_rels if spk(b) != spk(a)]
        other_g = [b for b in other if gender[spk(b)] == gender[spk(a)]]
        if same:
            t = rng.choice(same)
            e.append((1, a, t))
            h.append((1, a, t))
        e.append((0, a, rng.choice(other)))
        if other_g:
            h.append((0, a, rng.choice(other_g)))
    for name, trials, pool in (("veri_test", o, test_rels), ("list_test_all", e, all_rels),
                               ("list_test_hard", h, all_rels)):
        write_trials(out / f"{name}.txt", trials)
        dropped = rng.choice(pool)
        write_trials(out / f"{name}2.txt", [t for t in trials if dropped not in t[1:]])


def coloured_noise(rng: np.random.Generator, n: int, alpha: float) -> np.ndarray:
    """Noise with a 1/f^alpha power spectrum, scaled to a speech-like level."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    x = np.fft.irfft(spec / f ** (alpha / 2), n)
    return x / np.sqrt(np.mean(x ** 2)) * 3000


def synthetic_rir(rng: np.random.Generator, rt60: float, delay: int) -> np.ndarray:
    """A direct path after ``delay`` samples, then exponentially decaying reflections."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
    rir = np.concatenate([np.zeros(delay), [1.0], tail])
    return rir / np.max(np.abs(rir)) * 0.9 * 32767


def make_musan_and_rirs(out: Path, corpus: Path, spk2utt: dict, wav: dict, speech_spks: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i, alpha in enumerate((0.0, 1.0, 2.0)):
        p = out / "musan" / "noise" / "free-sound" / f"noise-free-sound-{i:04d}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_wav(p, coloured_noise(rng, int(SAMPLE_RATE * (0.8 + i * 0.6)), alpha))
    music = out / "musan" / "music" / "fma"
    music.mkdir(parents=True)
    ann = []
    for i in range(3):
        t = np.arange(int(SAMPLE_RATE * (3 + i))) / SAMPLE_RATE
        notes = rng.uniform(150, 900, size=3)
        x = sum(np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * (k + 1) * 0.7 * t))
                for k, f in enumerate(notes))
        write_wav(music / f"music-fma-{i:04d}.wav", x / np.max(np.abs(x)) * 8000)
        ann.append(f"music-fma-{i:04d} pop {'Y' if i == 0 else 'N'} artist{i}\n")
    (music / "ANNOTATIONS").write_text("".join(ann))
    speech = out / "musan" / "speech" / "librivox"
    speech.mkdir(parents=True)
    for i, spk in enumerate(speech_spks):
        utt = spk2utt[spk][0]
        samples, _ = read_audio(str(corpus / wav[utt]), utt=utt, sample_rate=SAMPLE_RATE, resample=True)
        write_wav(speech / f"speech-librivox-{i:04d}.wav", samples)
    for room, rt60s in (("smallroom", (0.15, 0.25)), ("mediumroom", (0.4, 0.6))):
        room_dir = out / "RIRS_NOISES" / "simulated_rirs" / room
        lines = []
        for r, rt60 in enumerate(rt60s, 1):
            for k in (1, 2):
                rel = f"Room{r:03d}/Room{r:03d}-{k:05d}.wav"
                (room_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                write_wav(room_dir / rel, synthetic_rir(rng, rt60, delay=int(rng.integers(20, 200))))
                lines.append(f"--rir-id {room}-Room{r:03d}-{k:05d} --room-id {room}-Room{r:03d} "
                             f"RIRS_NOISES/simulated_rirs/{room}/{rel}\n")
        (room_dir / "rir_list").write_text("".join(lines))


def main():
    ap = doc_argparser(__doc__)
    ap.add_argument("--vox1-dev-speakers", type=int, default=3)
    ap.add_argument("--vox1-test-speakers", type=int, default=3)
    ap.add_argument("--vox2-dev-speakers", type=int, default=3)
    ap.add_argument("--vox2-test-speakers", type=int, default=1)
    ap.add_argument("--babble-speakers", type=int, default=4, help="corpus speakers whose speech is MUSAN speech")
    ap.add_argument("--utts-per-speaker", type=int, default=4)
    ap.add_argument("--videos-per-speaker", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("corpus")
    ap.add_argument("out_dir")
    args = ap.parse_args()
    setup_logging()
    corpus = Path(args.corpus)
    meta = corpus / "train"
    for name in ("wav.scp", "spk2utt", "spk2gender"):
        if not (meta / name).is_file():
            raise SidError(f"{meta / name}: no such file (expected a Kaldi-style corpus with train/)")
    wav, gender = read_dict(meta / "wav.scp"), read_dict(meta / "spk2gender")
    spk2utt = {s: u.split() for s, u in read_dict(meta / "spk2utt").items()}
    counts = [args.vox1_dev_speakers, args.vox1_test_speakers, args.vox2_dev_speakers, args.vox2_test_speakers,
              args.babble_speakers]
    pool = sorted(s for s, us in spk2utt.items() if len(us) >= args.utts_per_speaker)
    if len(pool) < sum(counts):
        raise SidError(f"{meta}: {len(pool)} speakers have {args.utts_per_speaker} utterances; {sum(counts)} needed")
    rng = random.Random(args.seed)
    rng.shuffle(pool)
    groups, k = [], 0
    for c in counts:
        groups.append(pool[k:k + c])
        k += c
    v1_dev = [(s, f"id{10001 + i}") for i, s in enumerate(groups[0])]
    v1_test = [(s, f"id{10270 + i}") for i, s in enumerate(groups[1])]
    v2_dev = [(s, f"id{i + 1:05d}") for i, s in enumerate(groups[2])]
    v2_test = [(s, f"id{9001 + i:05d}") for i, s in enumerate(groups[3])]

    out = Path(args.out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    n, v = args.utts_per_speaker, args.videos_per_speaker
    dev_rels = lay_out_speakers(corpus, spk2utt, v1_dev, tmp / "voxceleb1" / "wav", "wav", n, v, wav)
    test_rels = lay_out_speakers(corpus, spk2utt, v1_test, tmp / "voxceleb1" / "wav", "wav", n, v, wav)
    lay_out_speakers(corpus, spk2utt, v2_dev, tmp / "voxceleb2" / "dev" / "aac", "m4a", n, v, wav)
    lay_out_speakers(corpus, spk2utt, v2_test, tmp / "voxceleb2" / "test" / "aac", "m4a", n, v, wav)
    (tmp / "voxceleb1" / "vox1_meta.csv").write_text(
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        + "".join(f"{new}\tName_{new}\t{gender[src]}\tNowhere\t{split}\n"
                  for group, split in ((v1_dev, "dev"), (v1_test, "test")) for src, new in group))
    (tmp / "voxceleb2" / "vox2_meta.csv").write_text(
        "\ufeffVoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \r\n"
        + "".join(f"{new} ,n{new[2:]} ,{gender[src]} ,{split} \r\n"
                  for group, split in ((v2_dev, "dev"), (v2_test, "test")) for src, new in group))
    (tmp / "lists").mkdir()
    new_gender = {new: gender[src] for src, new in v1_dev + v1_test}
    make_lists(tmp / "lists", test_rels, sorted(dev_rels + test_rels), new_gender, rng)
    make_musan_and_rirs(tmp, corpus, spk2utt, wav, groups[4], args.seed)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    logging.info("stand-in VoxCeleb1 (%d+%d speakers), VoxCeleb2 (%d+%d), MUSAN and RIRS_NOISES in %s",
                 len(v1_dev), len(v1_test), len(v2_dev), len(v2_test), out)


if __name__ == "__main__":
    run_main(main)
