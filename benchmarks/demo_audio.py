"""The embedded demo's audio as benchmark input: its ground truth and its espeak-ng system.

`demo_clips(home)` builds the demo once (`halle_bench.data.demo.build_demo`, cached under
`home`) and speaks every utterance with the demo's `espeak-ng` system voice, as the demo
run does, so a benchmark scores the same 16 clips (8 lengths of 5-72 s, two voices each,
about 530 s) that `halle-bench run` scores. Shared by bench_scoring.py and bench_peers.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DemoClip:
    system: str  # "ground-truth" or "espeak-ng"
    utt_id: str
    text: str
    wav: Path  # 16 kHz (ground truth) or espeak-ng's 22.05 kHz (system) wav file
    prompt_wav: Path
    prompt_text: str


def demo_clips(home: Path, scratch: Path) -> list[DemoClip]:
    """The demo's ground-truth clips and the espeak-ng system's clips (written to `scratch`)."""
    from halle_bench.data.demo import SYSTEM_VOICE, build_demo
    from halle_bench.espeak import espeak_to_file

    cfg = build_demo(Path(home))
    root = cfg.parent
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for r in rows:
        common = dict(utt_id=r["id"], text=r["text"], prompt_wav=root / r["prompt_audio"], prompt_text=r["prompt_text"])
        out.append(DemoClip(system="ground-truth", wav=root / r["audio"], **common))
    for r in rows:
        dst = Path(scratch) / "espeak-ng" / f"{r['id']}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            espeak_to_file(r["text"], dst, voice=SYSTEM_VOICE)
        out.append(DemoClip(system="espeak-ng", utt_id=r["id"], text=r["text"], wav=dst,
                            prompt_wav=root / r["prompt_audio"], prompt_text=r["prompt_text"]))
    return out


def load_16k(path: Path) -> np.ndarray:
    from halle_bench.audio import SCORING_SR, load_audio

    x, _, _ = load_audio(path, SCORING_SR)
    return x


__all__ = ["DemoClip", "demo_clips", "load_16k"]
