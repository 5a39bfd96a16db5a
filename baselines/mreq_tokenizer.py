"""MReQ tokenizer: waveform <-> multi-resolution tokens {rate: codes [n_q, T_rate]}.

A frozen codec (48 Hz teacher) gives the continuous embedding; a trained MRVQ turns it
into one token stream per level (8, 16, 24, 48 Hz by default); decoding sums the levels'
PostQ outputs and runs the codec decoder.

**Frame rule** (documented, tested): audio is right-padded with zeros to a whole *block*
of 1/s_min seconds (s_min = the lowest rate, 1/8 s by default). N seconds therefore give
exactly `ceil(N * s_min) * s_k / s_min` frames at rate s_k: 8N, 16N, 24N, 48N frames when
8N is whole, and for 7.3 s: 59, 118, 177, 354 frames. `decode` returns the padded length
(`n_blocks / s_min` seconds); `encode` records nothing else, so callers who need the
original length trim it themselves (`num_samples(seconds)` helps).

If the codec's encoder returns one frame more or less than `n_blocks * teacher_rate /
s_min` (padding conventions differ between codecs), the embedding is trimmed or
edge-padded to the exact count.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from halle_bench.audio import resample, sha256_file
from halle_bench.errors import ChecksumError

from .mrvq import MRVQ
from .mreq import load_mrvq, save_mrvq


class MReQTokenizer:
    def __init__(self, codec, mrvq: MRVQ):
        cfg = mrvq.cfg
        if abs(float(codec.frame_rate) - cfg.teacher_rate) > 1e-6:
            raise ValueError(f"codec frame rate {codec.frame_rate} Hz != MRVQ teacher rate {cfg.teacher_rate} Hz")
        if codec.dimension != cfg.dim:
            raise ValueError(f"codec dimension {codec.dimension} != MRVQ dim {cfg.dim}")
        self.codec = codec.eval()
        self.mrvq = mrvq.eval()
        self.min_rate = min(cfg.rates)
        if codec.sample_rate % self.min_rate:
            raise ValueError(f"codec sample rate {codec.sample_rate} is not a whole number of 1/{self.min_rate} s blocks")
        self.block_samples = codec.sample_rate // self.min_rate
        self.block_frames = cfg.teacher_rate // self.min_rate

    # ------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def rates(self) -> tuple[int, ...]:
        return self.mrvq.cfg.rates

    @property
    def device(self) -> torch.device:
        return next(self.mrvq.parameters()).device

    def n_blocks(self, seconds: float) -> int:
        # Round first so 7.3 s (7.2999.. in binary) is not counted as 58.399.. -> 59 anyway,
        # and an exact 60.0 s never becomes 481 blocks.
        return int(math.ceil(round(seconds * self.min_rate, 6)))

    def frames(self, seconds: float) -> dict[int, int]:
        """Frames per rate for `seconds` of audio (the frame rule above)."""
        n = self.n_blocks(seconds)
        return {r: n * r // self.min_rate for r in self.rates}

    def num_samples(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    # ------------------------------------------------------------ encode / decode
    def _embed(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [1, 1, n_blocks * block] -> exact teacher-rate embedding [1, D, n_blocks * block_frames]."""
        want = wav.shape[-1] // self.block_samples * self.block_frames
        z = self.codec.embed(wav)
        if z.shape[-1] > want:
            z = z[..., :want]
        elif z.shape[-1] < want:
            z = F.pad(z, (0, want - z.shape[-1]), mode="replicate")
        return z

    def _prepare(self, wav: np.ndarray | torch.Tensor, sr: int) -> torch.Tensor:
        x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if x.size == 0:
            raise ValueError("cannot encode empty audio")
        if sr != self.sample_rate:
            x = resample(x, sr, self.sample_rate)
        n = self.n_blocks(x.size / self.sample_rate)
        x = np.pad(x, (0, n * self.block_samples - x.size))
        return self._embed(torch.from_numpy(x).view(1, 1, -1).to(self.device))

    @torch.no_grad()
    def encode_levels(self, wav: np.ndarray | torch.Tensor, sr: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One item's PreQ tokens a_k [n_pre, T_teacher] and Quant tokens b_k [n_q, T_k] per level
        (what HALL-E's NAR trains on)."""
        a, b = self.mrvq.encode_levels(self._prepare(wav, sr))
        return [x[0] for x in a], [x[0] for x in b]

    @torch.no_grad()
    def encode(self, wav: np.ndarray | torch.Tensor, sr: int) -> dict[int, torch.Tensor]:
        """Mono audio (1-D) at `sr` -> {rate: LongTensor [n_q(rate), T_rate]}."""
        toks = self.mrvq.encode(self._prepare(wav, sr))
        return {r: c[0] for r, c in toks.items()}

    @torch.no_grad()
    def embedding(self, tokens: dict[int, torch.Tensor], n_levels: int | None = None) -> torch.Tensor:
        """Student embedding [1, D, T_teacher] from tokens (first `n_levels` levels)."""
        self._check(tokens, n_levels)
        batch = {r: c.unsqueeze(0).to(self.device) for r, c in tokens.items()}
        return self.mrvq.decode(batch, n_levels=n_levels)

    @torch.no_grad()
    def decode(self, tokens: dict[int, torch.Tensor], n_levels: int | None = None) -> np.ndarray:
        """{rate: [n_q, T_rate]} -> mono float32 audio at `sample_rate`, n_blocks blocks long."""
        emb = self.embedding(tokens, n_levels)
        wav = self.codec.decode_emb(emb).reshape(-1)
        n = emb.shape[-1] // self.block_frames * self.block_samples
        wav = wav[:n] if wav.numel() >= n else F.pad(wav, (0, n - wav.numel()))
        return wav.float().cpu().numpy()

    def _check(self, tokens: dict[int, torch.Tensor], n_levels: int | None) -> None:
        use = self.rates[: n_levels or len(self.rates)]
        missing = [r for r in use if r not in tokens]
        if missing:
            raise ValueError(f"tokens for rates {missing} missing (have {sorted(tokens)})")
        n = tokens[use[0]].shape[-1] * self.min_rate // use[0]
        for r in use:
            lv = self.mrvq.levels[self.rates.index(r)]
            c = tokens[r]
            if c.dim() != 2 or c.shape[0] != lv.quant.n_q:
                raise ValueError(f"tokens at {r} Hz must be [{lv.quant.n_q}, T], got {tuple(c.shape)}")
            if c.shape[-1] != n * r // self.min_rate:
                raise ValueError(f"tokens at {r} Hz have {c.shape[-1]} frames, expected {n * r // self.min_rate}")

    # ------------------------------------------------------------ identity / files
    def identity(self) -> dict[str, Any]:
        ident = dict(self.codec.identity()) if hasattr(self.codec, "identity") else {}
        return {"codec": ident, "mrvq": self.mrvq.cfg.to_dict(), "mrvq_sha256": getattr(self, "mrvq_sha256", None)}

    def save(self, directory: str | Path, half: bool = False) -> Path:
        """codec/ (the codec's own save) + mrvq.safetensors + mrvq.json + tokenizer.json
        (`half`: MRVQ tensors stored as fp16, for shipped files)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.codec.save(d / "codec")
        save_mrvq(d, self.mrvq, {"codec": self.identity()["codec"]}, half=half)
        self.mrvq_sha256 = sha256_file(d / "mrvq.safetensors")
        meta = {"format": "mreq-tokenizer/1", **self.identity(),
                "codec_file_sha256": sha256_file(d / "codec" / "codec.safetensors")}
        (d / "tokenizer.json").write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "MReQTokenizer":
        from .codec_api import load_codec

        d = Path(directory)
        if not (d / "tokenizer.json").exists():
            raise FileNotFoundError(f"not an MReQ tokenizer folder (no tokenizer.json): {d}")
        meta = json.loads((d / "tokenizer.json").read_text())
        want = meta.get("codec_file_sha256")
        have = sha256_file(d / "codec" / "codec.safetensors")
        if want and want != have:
            raise ChecksumError(f"{d / 'codec' / 'codec.safetensors'}: sha256 {have} differs from the codec "
                                f"the MRVQ was trained with ({want})")
        codec = load_codec(d / "codec").to(device)
        mrvq, _ = load_mrvq(d, device)
        tok = cls(codec, mrvq)
        tok.mrvq_sha256 = sha256_file(d / "mrvq.safetensors")
        return tok
