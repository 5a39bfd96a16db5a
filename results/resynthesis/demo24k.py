"""The embedded demo's utterances at 24 kHz: the same texts and voices, espeak-ng's own
22.05 kHz output resampled to 24 kHz (the demo itself is 16 kHz, band-limited to 8 kHz).
Issue 16 asks for the teacher's resynthesis WER from 24 kHz and from 16 kHz references.

    python results/resynthesis/demo24k.py OUT    # writes OUT/manifest.jsonl and OUT/wavs/
    halle-bench run results/resynthesis/config-24k.toml --out runs/resynthesis-24k
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from halle_bench.audio import load_audio, save_audio
from halle_bench.data.demo import SPEAKERS, build_demo
from halle_bench.espeak import espeak_to_file
from halle_bench.models import home

SR = 24000


def main(out: str) -> int:
    demo = build_demo(home()).parent
    voices = {v.speaker: v for v in SPEAKERS}
    o = Path(out)
    (o / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for line in (demo / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        v = voices[r["speaker"]]
        raw = espeak_to_file(r["text"], o / "raw.wav", voice=v.voice, speed=v.speed, pitch=v.pitch)
        x, _, _ = load_audio(raw, sr=SR)
        save_audio(o / "wavs" / f"{r['id']}.wav", x, SR)
        rows.append({**r, "audio": f"wavs/{r['id']}.wav", "prompt_audio": str(demo / r["prompt_audio"]),
                     "duration": round(len(x) / SR, 3)})
    (o / "raw.wav").unlink(missing_ok=True)
    (o / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} utterances at {SR} Hz -> {o / 'manifest.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else str(home() / "demo24k")))
