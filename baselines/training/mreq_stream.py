"""MReQ training that streams audio: random crops read from the files at each step.

`MReQTrainer` (baselines/mreq.py) holds every waveform in memory (100 h of 24 kHz float32 is
about 35 GB); `StreamingMReQTrainer` keeps only (path, length) per utterance and reads each
crop with a partial `soundfile` read, then resamples it to the codec's rate. The crop
positions follow the same rule as the in-memory trainer (whole 1/s_1-second blocks of the
padded utterance, deterministic in (seed, step)), so resume stays exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from halle_bench.baselines.mreq import MReQTrainer


@dataclass(frozen=True)
class AudioRef:
    path: Path
    frames: int  # samples at the file's rate
    sample_rate: int


def audio_refs(paths) -> tuple[list[AudioRef], list[str]]:
    """(refs, errors): the length of every readable file, from its header only."""
    import soundfile as sf

    refs, errors = [], []
    for p in paths:
        try:
            info = sf.info(str(p))
            if info.frames == 0:
                raise ValueError("no samples")
            refs.append(AudioRef(Path(p), int(info.frames), int(info.samplerate)))
        except Exception as e:  # noqa: BLE001  (reported with the file's name)
            errors.append(f"{p}: {e}")
    return refs, errors


def read_crop(ref: AudioRef, start: int, length: int, sr: int) -> np.ndarray:
    """`length` samples at `sr` from sample `start` (at `sr`) of the file; zeros past its end."""
    import soundfile as sf

    from halle_bench.audio import resample

    a = int(math.floor(start * ref.sample_rate / sr))
    b = min(ref.frames, int(math.ceil((start + length) * ref.sample_rate / sr)) + 1)
    out = np.zeros(length, dtype=np.float32)
    if a >= b:
        return out
    x, _ = sf.read(str(ref.path), start=a, stop=b, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if ref.sample_rate != sr:
        x = resample(x, ref.sample_rate, sr)
    n = min(length, len(x))
    out[:n] = x[:n]
    return out


class StreamingMReQTrainer(MReQTrainer):
    def __init__(self, model, refs: list[AudioRef], cfg, out_dir=None, device: str = "cpu"):
        if not refs:
            raise ValueError("StreamingMReQTrainer needs at least one audio file")
        # the parent wants waveforms; one silent block stands in (batch() below never uses it)
        super().__init__(model, [torch.zeros(1)], cfg, out_dir, device)
        self.data = []
        self.refs = list(refs)
        self.sr = model.codec.sample_rate

    def _padded_len(self, ref: AudioRef) -> int:
        n = int(math.ceil(ref.frames * self.sr / ref.sample_rate))
        return max(self.seg, int(math.ceil(n / self.block)) * self.block)

    def crops(self, step: int, n: int, refs: list[AudioRef] | None = None) -> torch.Tensor:
        refs = refs or self.refs
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        out = []
        for _ in range(n):
            ref = refs[int(torch.randint(len(refs), (1,), generator=g))]
            n_start = (self._padded_len(ref) - self.seg) // self.block + 1
            s = int(torch.randint(n_start, (1,), generator=g)) * self.block
            out.append(torch.from_numpy(read_crop(ref, s, self.seg, self.sr)))
        return torch.stack(out).unsqueeze(1).to(self.device)

    def batch(self, step: int) -> torch.Tensor:
        return self.crops(step, self.cfg.batch_size)


__all__ = ["AudioRef", "audio_refs", "read_crop", "StreamingMReQTrainer"]
