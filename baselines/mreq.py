"""MReQ post-training: teach an MRVQ to replace a frozen codec's RVQ (HALL-E, section 3).

The codec's encoder and decoder are frozen (no gradients to their weights, eval mode);
only the MRVQ learns. For a waveform x:

    z   = codec.embed(x)                       continuous encoder output [B, D, T]
    h_t = codec.dequantize(codec.quantize(z))  the teacher: the original RVQ's output
    h_s = MRVQ(z).student                      sum_k c_k
    x^  = codec.decode_emb(h_s)                gradients flow through the frozen decoder

    loss = w_nac * L_NAC(x^, x) + w_fld * L_FLD(h_s, h_t) + w_hsr * L_HSR
         + w_commit * commitment + w_codebook * codebook

Decisions where the paper is silent (all in `MReQLossConfig`):

* L_NAC = multi-scale log-mel L1 + linear-magnitude STFT L1 over several FFT sizes, plus
  waveform L1 (`w_wave`); the adversarial/feature-matching terms of EnCodec's own
  objective are left out (no discriminator here). FFT sizes scale with the sample rate.
  A codec whose decoder has no gradient (`decoder_has_grad = False`: the mel codec, whose
  embedding is itself a log-mel) gets L_NAC = L1(student embedding, encoder log-mel).
* L_FLD = MSE between student and teacher embeddings (`teacher = "rvq"`), or against the
  encoder output itself (`teacher = "encoder"`, for codecs without a usable RVQ).
* All weights default to 1.0; commitment 0.25 (VQ-VAE's beta).

`MReQTrainer` runs the loop with AdamW, random crops of whole 1/s_1-second blocks, a
checkpoint every `ckpt_every` steps (MRVQ weights as safetensors + config.json, optimizer
and RNG state in `train_state.pt` loaded with weights_only=True) and exact resume.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mrvq import MRVQ, MRVQConfig


class FrozenCodec(Protocol):
    """What MReQ needs from a codec (H5's `baselines.codec.Codec` provides it)."""

    sample_rate: int
    frame_rate: float
    dimension: int

    def embed(self, wav: torch.Tensor) -> torch.Tensor: ...
    def quantize(self, emb: torch.Tensor) -> torch.Tensor: ...
    def dequantize(self, codes: torch.Tensor) -> torch.Tensor: ...
    def decode_emb(self, emb: torch.Tensor) -> torch.Tensor: ...


# ------------------------------------------------------------------ losses (pure)
def _mel_fbank(n_fft: int, n_mels: int, sr: int, device, dtype) -> torch.Tensor:
    import torchaudio.functional as AF

    return AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sr / 2, n_mels, sr, norm="slaney", mel_scale="slaney").to(device, dtype)


def multiscale_spectral_loss(
    x_hat: torch.Tensor, x: torch.Tensor, sample_rate: int, n_ffts: Sequence[int], n_mels: int = 64
) -> torch.Tensor:
    """Mean over FFT sizes of L1(log-mel) + L1(|STFT|) between x_hat and x ([B, N] or [B, 1, N])."""
    x_hat, x = x_hat.reshape(x_hat.shape[0], -1), x.reshape(x.shape[0], -1)
    total = x.new_zeros(())
    for n_fft in n_ffts:
        win = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
        spec = lambda s: torch.stft(s, n_fft, hop_length=n_fft // 4, window=win, return_complex=True).abs()
        s_hat, s = spec(x_hat), spec(x)
        fb = _mel_fbank(n_fft, min(n_mels, n_fft // 4), sample_rate, x.device, x.dtype)
        mel = lambda m: torch.log(torch.clamp(m.transpose(1, 2) @ fb, min=1e-5))
        total = total + F.l1_loss(mel(s_hat), mel(s)) + F.l1_loss(s_hat, s)
    return total / len(n_ffts)


@dataclass(frozen=True)
class MReQLossConfig:
    w_nac: float = 1.0
    w_wave: float = 1.0  # waveform L1 inside L_NAC
    w_fld: float = 1.0
    w_hsr: float = 1.0
    w_commit: float = 0.25
    w_codebook: float = 1.0  # straight-through codebooks only (EMA ones give 0)
    teacher: str = "rvq"  # "rvq" | "encoder"
    fft_ms: tuple[float, ...] = (21.3, 42.7, 85.3)  # 512/1024/2048 at 24 kHz
    n_mels: int = 64

    def n_ffts(self, sr: int) -> tuple[int, ...]:
        return tuple(2 ** round(math.log2(ms * sr / 1000)) for ms in self.fft_ms)


class MReQModel(nn.Module):
    """Frozen codec + trainable MRVQ. `losses(wav)` gives every term and the total."""

    def __init__(self, codec: nn.Module, mrvq: MRVQ, loss_cfg: MReQLossConfig = MReQLossConfig()):
        super().__init__()
        if mrvq.cfg.dim != codec.dimension:
            raise ValueError(f"MRVQ dim {mrvq.cfg.dim} != codec embedding dimension {codec.dimension}")
        fr = float(codec.frame_rate)
        if abs(fr - mrvq.cfg.teacher_rate) > 1e-6:
            raise ValueError(f"codec frame rate {fr} Hz != MRVQ teacher rate {mrvq.cfg.teacher_rate} Hz")
        self.codec = codec
        self.mrvq = mrvq
        self.loss_cfg = loss_cfg
        self.freeze_codec()

    def freeze_codec(self) -> None:
        for p in self.codec.parameters():
            p.requires_grad_(False)
        self.codec.eval()

    def train(self, mode: bool = True):  # the codec stays in eval mode
        super().train(mode)
        self.codec.eval()
        return self

    def decode_with_grad(self, emb: torch.Tensor) -> torch.Tensor:
        """The frozen decoder, differentiable w.r.t. its input (L_NAC's gradient path).

        H5's `Codec.decode_emb` runs under no_grad (inference API), so the decoder module
        is called directly when the codec has one.
        """
        dec = getattr(self.codec, "decoder", None)
        return dec(emb) if isinstance(dec, nn.Module) else self.codec.decode_emb(emb)

    def losses(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """wav [B, 1, N] at the codec's rate, N a whole number of 1/s_1-second blocks."""
        z, teacher = self.targets(wav)
        return self.losses_from_features(z, teacher, wav)

    @torch.no_grad()
    def targets(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder output z, teacher embedding) for wav [B, 1, N]."""
        z = self.codec.embed(wav)
        teacher = self.codec.dequantize(self.codec.quantize(z)) if self.loss_cfg.teacher == "rvq" else z
        return z, teacher

    def losses_from_features(self, z: torch.Tensor, teacher: torch.Tensor,
                             wav: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The losses given the frozen codec's z and teacher; `wav` is needed only when the
        decoder has a gradient (L_NAC on the waveform)."""
        cfg = self.loss_cfg
        out = self.mrvq(z)
        if getattr(self.codec, "decoder_has_grad", True):
            if wav is None:
                raise ValueError("this codec's L_NAC needs the waveform")
            x_hat = self.decode_with_grad(out.student)[..., : wav.shape[-1]]
            spec = multiscale_spectral_loss(x_hat, wav, self.codec.sample_rate, cfg.n_ffts(self.codec.sample_rate), cfg.n_mels)
            wave = F.l1_loss(x_hat, wav)
        else:
            # A weight-free synthesis (the mel codec's Griffin-Lim) has no useful gradient,
            # but its embedding *is* the signal's log-mel: the codec's own reconstruction
            # objective is then L1 between the student and the encoder's log-mel.
            spec = F.l1_loss(out.student, z)
            wave = z.new_zeros(())
        nac = spec + cfg.w_wave * wave
        fld = F.mse_loss(out.student, teacher)
        total = (cfg.w_nac * nac + cfg.w_fld * fld + cfg.w_hsr * out.hsr_loss
                 + cfg.w_commit * out.commit_loss + cfg.w_codebook * out.codebook_loss)
        return {"loss": total, "nac": nac, "spec": spec, "wave": wave, "fld": fld, "hsr": out.hsr_loss,
                "commit": out.commit_loss, "codebook": out.codebook_loss}


# ------------------------------------------------------------------ training loop
@dataclass(frozen=True)
class MReQTrainConfig:
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 4
    segment_blocks: int = 8  # crop length in blocks of 1/s_1 s (8 blocks at 8 Hz = 1 s)
    grad_clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 10


def save_mrvq(directory: str | Path, mrvq: MRVQ, extra: dict[str, Any] | None = None, half: bool = False) -> Path:
    """MRVQ weights (safetensors) + config.json {"mrvq": ..., **extra}. `half` stores float
    tensors as fp16 and leaves out the EMA accumulators (`embed_sum`, a training-only state
    that `load_mrvq` rebuilds from codebook x cluster size): shipped files, about 1/3 of
    the fp32 size; they load back into the fp32 module."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in mrvq.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items() if not k.endswith(".embed_sum")}
        extra = {**(extra or {}), "ema_sums_dropped": True}
    save_file(state, str(d / "mrvq.safetensors"))
    (d / "mrvq.json").write_text(json.dumps({"mrvq": mrvq.cfg.to_dict(), **(extra or {})}, indent=2))
    return d


def load_mrvq(directory: str | Path, device: str = "cpu") -> tuple[MRVQ, dict[str, Any]]:
    """Strict load: any missing/unexpected key or wrong shape is an error naming it."""
    from halle_bench.weights import load_state_strict, safetensors_load

    d = Path(directory)
    for f in ("mrvq.json", "mrvq.safetensors"):
        if not (d / f).exists():
            raise FileNotFoundError(f"MRVQ checkpoint file missing: {d / f} (train one with MReQTrainer)")
    meta = json.loads((d / "mrvq.json").read_text())
    mrvq = MRVQ(MRVQConfig.from_dict(meta["mrvq"]))
    what = f"MRVQ checkpoint {d}"
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in safetensors_load(d / "mrvq.safetensors", what).items()}
    if meta.get("ema_sums_dropped"):
        _rebuild_ema_sums(mrvq, state)
    load_state_strict(mrvq, state, what, "mrvq.safetensors")
    return mrvq.to(device), meta


def _rebuild_ema_sums(mrvq: MRVQ, state: dict[str, torch.Tensor]) -> None:
    """embed_sum = codebook x Laplace-smoothed cluster size (the inverse of the EMA update)."""
    for name, mod in mrvq.named_modules():
        if not hasattr(mod, "embed_sum"):
            continue
        key = f"{name}.embed_sum"
        cb, cs = state.get(f"{name}.codebook"), state.get(f"{name}.cluster_size")
        if key in state or cb is None or cs is None:
            continue
        n, eps, k = cs.sum(), mod.cfg.eps, mod.cfg.codebook_size
        state[key] = cb * ((cs + eps) / (n + k * eps) * n)[:, None]


class MReQTrainer:
    """Train `model.mrvq` on a list of waveforms (1-D tensors at the codec's rate).

    Checkpoints go to `out_dir` (`mrvq.safetensors`, `mrvq.json`, `train_state.pt`);
    constructing a trainer on a folder holding a checkpoint resumes from it exactly.
    """

    def __init__(self, model: MReQModel, data: Sequence[torch.Tensor], cfg: MReQTrainConfig,
                 out_dir: str | Path | None = None, device: str = "cpu"):
        self.model, self.cfg, self.device = model.to(device), cfg, device
        self.out_dir = Path(out_dir) if out_dir is not None else None
        sr = model.codec.sample_rate
        self.block = int(round(sr / model.mrvq.cfg.rates[0]))  # samples per 1/s_1 s
        self.seg = cfg.segment_blocks * self.block
        self.data = [self._pad(torch.as_tensor(w, dtype=torch.float32).reshape(-1)) for w in data]
        if not self.data:
            raise ValueError("MReQTrainer needs at least one waveform")
        # A codec without decoder gradients needs only (z, teacher): computed once per clip
        # and cropped per step (the same crops as on the waveform: whole 1/s_1 blocks).
        self.feature_mode = not getattr(model.codec, "decoder_has_grad", True)
        self.feats: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.feature_mode:
            fpb = model.mrvq.cfg.teacher_rate // model.mrvq.cfg.rates[0]  # teacher frames per block
            for w in self.data:
                z, t = model.targets(w.view(1, 1, -1).to(device))
                n = w.numel() // self.block * fpb
                z, t = z[..., :n], t[..., :n]
                if z.shape[-1] < n:
                    z, t = F.pad(z, (0, n - z.shape[-1]), mode="replicate"), F.pad(t, (0, n - t.shape[-1]), mode="replicate")
                self.feats.append((z[0], t[0]))
            self.block_frames = fpb
        self.opt = torch.optim.AdamW(model.mrvq.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.history: list[dict[str, float]] = []
        torch.manual_seed(cfg.seed)
        if self.out_dir is not None and (self.out_dir / "train_state.pt").exists():
            self.resume()

    def _pad(self, w: torch.Tensor) -> torch.Tensor:
        n = max(self.seg, int(math.ceil(w.numel() / self.block)) * self.block)
        return F.pad(w, (0, n - w.numel()))

    def batch(self, step: int) -> torch.Tensor:
        """Deterministic in (seed, step): resume gives the same batches."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        out = []
        for _ in range(self.cfg.batch_size):
            i = int(torch.randint(len(self.data), (1,), generator=g))
            w = self.data[i]
            n_start = (w.numel() - self.seg) // self.block + 1
            blk = int(torch.randint(n_start, (1,), generator=g))
            if self.feature_mode:
                z, t = self.feats[i]
                s, n = blk * self.block_frames, self.cfg.segment_blocks * self.block_frames
                out.append((z[:, s : s + n], t[:, s : s + n]))
            else:
                s = blk * self.block
                out.append(w[s : s + self.seg])
        if self.feature_mode:
            return torch.stack([z for z, _ in out]).to(self.device), torch.stack([t for _, t in out]).to(self.device)
        return torch.stack(out).unsqueeze(1).to(self.device)

    def train_step(self) -> dict[str, float]:
        self.model.train()
        b = self.batch(self.step)
        losses = self.model.losses_from_features(*b) if self.feature_mode else self.model.losses(b)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.mrvq.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        row = {"step": self.step, **{k: float(v.detach()) for k, v in losses.items()}}
        self.history.append(row)
        return row

    @torch.no_grad()
    def evaluate(self, wav: torch.Tensor) -> dict[str, float]:
        """Losses on a fixed batch in eval mode (no codebook updates): a validation curve."""
        was = self.model.mrvq.training
        self.model.eval()
        try:
            return {k: float(v) for k, v in self.model.losses(wav.to(self.device)).items()}
        finally:
            self.model.train(was)

    def fit(self, steps: int | None = None, log=None) -> list[dict[str, float]]:
        end = self.cfg.steps if steps is None else self.step + steps
        while self.step < end:
            row = self.train_step()
            if log is not None and self.step % self.cfg.log_every == 0:
                log(row)
            if self.out_dir is not None and (self.step % self.cfg.ckpt_every == 0 or self.step == end):
                self.save()
        return self.history

    def codec_identity(self) -> dict[str, Any]:
        c = self.model.codec
        ident = {"sample_rate": c.sample_rate, "frame_rate": float(c.frame_rate), "dimension": c.dimension}
        if hasattr(c, "identity"):
            ident.update(c.identity())
        return ident

    def save(self) -> None:
        assert self.out_dir is not None
        save_mrvq(self.out_dir, self.model.mrvq, {"codec": self.codec_identity(),
                                                   "loss": asdict(self.model.loss_cfg), "train": asdict(self.cfg),
                                                   "step": self.step})
        state = {"step": self.step, "optimizer": self.opt.state_dict(), "rng": torch.get_rng_state()}
        tmp = self.out_dir / "train_state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out_dir / "train_state.pt")

    def resume(self) -> None:
        assert self.out_dir is not None
        mrvq, _ = load_mrvq(self.out_dir, self.device)
        self.model.mrvq.load_state_dict(mrvq.state_dict(), strict=True)
        state = torch.load(self.out_dir / "train_state.pt", map_location=self.device, weights_only=True)
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"].cpu())
        self.step = int(state["step"])
