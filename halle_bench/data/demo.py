"""The embedded demo: a small long-form benchmark spoken by espeak-ng, built once.

`halle-bench run` with no config runs this set. Four espeak-ng voices (with their own
rate and pitch) are the speakers; the texts are cut at sentence boundaries from the
bundled public-domain passage (`passage.txt`, a retelling of the opening of Lewis
Carroll's *Alice's Adventures in Wonderland*, 1865) so that every bucket up to 90 s
holds two utterances. Each utterance has a ~3 s prompt: a different, whole sentence
spoken by the same voice (cross-utterance style), with its transcript. The competing
system is espeak-ng in a voice that none of the speakers use, so its speaker
similarity must come out below the ground truth's.

Decisions:
- Texts are fitted to target durations by estimating from a per-voice speaking rate
  (measured once per build on a calibration sentence) and then *checked* on the real
  audio: a text whose audio falls outside its bucket gains or loses a sentence and is
  spoken again. So the bucket counts hold on any espeak-ng version, not just ours.
- The total reference audio is about 4.3 minutes, which keeps the whole demo run
  (Whisper-base ASR on the ground truth and on espeak's output) within ~5 minutes on
  two CPU cores.
- The build writes into a temporary sibling folder and renames it into place, with a
  `COMPLETE` marker written last; a folder without the marker (or missing a listed
  file) is rebuilt. A killed build never leaves a half demo that looks finished.
- `DEMO_VERSION` is part of the folder name: bump it whenever the content changes
  (texts, voices, targets, passage), so old caches are simply ignored.
- The config names the manifest by absolute path (the config contract resolves
  relative paths against the config's folder; an absolute path also survives the
  config being copied into a run directory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..audio import load_audio, save_audio, SCORING_SR
from ..errors import HalleBenchError
from ..espeak import espeak_to_file

DEMO_VERSION = 2
DEMO_BUCKETS = (3, 10, 30, 60, 90, 180)
PROMPT_WORDS = (8, 9)  # ~3 s at the demo voices' ~3 words/s
MARKER = "COMPLETE"


@dataclass(frozen=True)
class Voice:
    speaker: str
    voice: str
    speed: int  # espeak-ng words per minute
    pitch: int  # 0-99


SPEAKERS = (
    Voice("spk1", "en-us", 145, 45),
    Voice("spk2", "en-gb", 150, 62),
    Voice("spk3", "en-gb-x-rp", 135, 35),
    Voice("spk4", "en-us+f3", 145, 70),
)
SYSTEM_VOICE = "en-gb-scotland"  # the espeak-ng "system": a voice no speaker uses

# (bucket low, bucket high, target seconds): two utterances per bucket up to 90 s.
TARGETS = (
    (3, 10, 5.0), (3, 10, 8.0),
    (10, 30, 14.0), (10, 30, 21.0),
    (30, 60, 36.0), (30, 60, 44.0),
    (60, 90, 66.0), (60, 90, 72.0),
)


def passage() -> str:
    return resources.files("halle_bench.data").joinpath("passage.txt").read_text(encoding="utf-8")


def split_sentences(text: str) -> list[str]:
    """Sentences of a plain-text passage (ends at . ! ? followed by space)."""
    flat = " ".join(text.split())
    return [s for s in re.split(r"(?<=[.!?])\s+", flat) if s]


def demo_dir(home: Path) -> Path:
    return Path(home) / "demo" / f"v{DEMO_VERSION}"


def _espeak_version() -> str:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip()


def _is_complete(d: Path) -> bool:
    marker = d / MARKER
    if not marker.is_file():
        return False
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, OSError):
        return False
    return all((d / f).is_file() for f in files)


def _speak(text: str, v: Voice, dst: Path, scratch: Path) -> float:
    """Speak `text` in voice `v`, write it as a 16 kHz wav at `dst`, return seconds."""
    raw = espeak_to_file(text, scratch / "raw.wav", voice=v.voice, speed=v.speed, pitch=v.pitch)
    x, sr, _ = load_audio(raw, sr=SCORING_SR)
    save_audio(dst, x, sr)
    return len(x) / sr


def _fit(sentences: list[str], v: Voice, lo: float, hi: float, target: float, wps: float,
         dst: Path, scratch: Path) -> tuple[int, float]:
    """The number of leading `sentences` whose spoken length lies in [lo, hi): start
    from the rate estimate nearest `target`, then correct on the real audio."""
    words = [len(s.split()) for s in sentences]
    cum = [sum(words[: i + 1]) / wps for i in range(len(words))]
    n = 1 + min(range(len(cum)), key=lambda i: abs(cum[i] - target))
    tried: set[int] = set()
    while 1 <= n <= len(sentences) and n not in tried:
        tried.add(n)
        secs = _speak(" ".join(sentences[:n]), v, dst, scratch)
        if secs < lo:
            n += 1
        elif secs >= hi:
            n -= 1
        else:
            return n, secs
    raise HalleBenchError(f"demo: cannot fit sentences into the {lo:g}-{hi:g} s bucket for voice {v.voice}")


def _build(root: Path, final: Path) -> None:
    """Write the whole demo under `root`; paths inside the config point at `final`."""
    import tomli_w

    scratch = root / ".scratch"
    scratch.mkdir(parents=True)
    sentences = split_sentences(passage())
    # Prompts: whole short sentences taken from the end of the passage, kept out of
    # the utterance texts, so a prompt is never part of what is to be spoken.
    prompt_idx = [i for i in range(len(sentences) - 1, -1, -1)
                  if PROMPT_WORDS[0] <= len(sentences[i].split()) <= PROMPT_WORDS[1]][: len(TARGETS)]
    if len(prompt_idx) < len(TARGETS):
        raise HalleBenchError("demo: the passage has too few short sentences for the prompts")
    body = [s for i, s in enumerate(sentences) if i not in set(prompt_idx)]
    calibration = " ".join(body[:3])
    wps = {}
    for v in SPEAKERS:
        wps[v.speaker] = len(calibration.split()) / _speak(calibration, v, scratch / "cal.wav", scratch)

    rows, files, pos = [], [], 0
    for i, (lo, hi, target) in enumerate(TARGETS):
        v = SPEAKERS[i % len(SPEAKERS)]
        uid = f"demo{i + 1:02d}-{v.speaker}"
        wav = Path("wavs") / f"{uid}.wav"
        n, secs = _fit(body[pos:], v, lo, hi, target, wps[v.speaker], root / wav, scratch)
        text = " ".join(body[pos : pos + n])
        pos += n
        prompt_text = sentences[prompt_idx[i]]
        pwav = Path("prompts") / f"{uid}.wav"
        _speak(prompt_text, v, root / pwav, scratch)
        rows.append({"id": uid, "text": text, "audio": wav.as_posix(), "duration": round(secs, 3),
                     "speaker": v.speaker, "prompt_audio": pwav.as_posix(), "prompt_text": prompt_text,
                     "voice": v.voice})
        files += [wav.as_posix(), pwav.as_posix()]
    shutil.rmtree(scratch)
    with open(root / "manifest.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    config = {
        "dataset": {"name": f"demo-v{DEMO_VERSION}", "manifest": str(final / "manifest.jsonl"), "format": "jsonl",
                    "buckets": list(DEMO_BUCKETS), "prompt": "given"},
        "systems": [
            {"name": "ground-truth", "kind": "ground-truth"},
            {"name": "espeak-ng", "kind": "command",
             "command": ["espeak-ng", "-v", SYSTEM_VOICE, "-w", "{out}", "{text}"], "timeout": 120},
        ],
        "metrics": {"wer": {"asr": "whisper-base", "normalizer": "whisper-en"}, "sim": {"model": "resemblyzer"},
                    # DNSMOS on non-overlapping native 9.01 s windows (hop 1 s would score every
                    # second ~9 times over and take most of the demo's 5-minute budget).
                    "quality": {"model": "dnsmos", "hop_seconds": 9.01}, "longform": {}},
        "run": {"seed": 0, "device": "cpu", "max_failed_fraction": 0.0},
    }
    (root / "config.toml").write_text(
        f"# halle-bench embedded demo v{DEMO_VERSION}, generated by halle_bench.data.demo; do not edit\n"
        + tomli_w.dumps(config), encoding="utf-8")
    files += ["manifest.jsonl", "config.toml"]
    # Written last: its presence (and the files it lists) is what "complete" means.
    (root / MARKER).write_text(json.dumps({"version": DEMO_VERSION, "espeak_ng": _espeak_version(),
                                           "files": files}, indent=1))


def _clean_stale(parent: Path, prefix: str) -> None:
    """Remove temp folders `<prefix><pid>-*` of builds whose process is gone (killed mid-build)."""
    for d in parent.glob(f"{prefix}*"):
        try:
            os.kill(int(d.name[len(prefix):].split("-")[0]), 0)  # raises if no such process
        except (ValueError, ProcessLookupError):
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass  # someone else's live process


def build_once(final: Path, prefix: str, build) -> None:
    """Make the cached folder `final` with `build(folder)` unless a complete one is there:
    built in a temp folder `<prefix><pid>-*` beside it and renamed into place, so a killed
    build leaves nothing half-written and concurrent builders keep the first finished one."""
    if _is_complete(final):
        return
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(parent, prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    try:
        build(tmp / "b")
        if _is_complete(final):  # a concurrent build finished first: keep that one
            return
        if final.exists():  # an incomplete earlier build
            shutil.rmtree(final)
        try:
            os.rename(tmp / "b", final)
        except OSError:
            if not _is_complete(final):  # not a concurrent builder that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_demo(home: Path) -> Path:
    """Build the demo under `home/demo/v<DEMO_VERSION>` unless a complete one is there,
    and return the path of its config TOML."""
    final = demo_dir(home)
    build_once(final, f".v{DEMO_VERSION}-", lambda folder: _build(folder, final))
    return final / "config.toml"
