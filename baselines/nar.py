"""VALL-E's non-autoregressive model: codebooks 2..N given codebook 1, text and a prompt.

One bidirectional transformer serves every stage j = 1..N-1 (0-based codebook index):

    [text_1 .. text_L, TEXT_EOS, prompt frames, target frames]

- a prompt frame is the sum of the embeddings of *all* its codebooks;
- a target frame is the sum of the embeddings of the codebooks *below* stage j;
- the stage enters through adaptive layer norm (`stage - 1` indexes the AdaLN table);
- the output for target frames predicts codebook j, through a head tied to codebook j's
  embedding. Decoding is greedy, stage by stage.

Positions: text from 0; audio (prompt then target) from 0 as one stream, each item
with its own positions, so padding inside the batch changes nothing.

Training (where the paper is silent): each item's prompt is a prefix of its own
utterance, `prompt_range` (default 25-50 %) of its frames, drawn per step; the stage is
drawn uniformly per item; the loss is the cross-entropy over the target frames only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ar import text_with_eos
from .transformer import SinusoidalPositions, Transformer, TransformerConfig


def _default_tf() -> TransformerConfig:
    return TransformerConfig.tiny(adaptive_norm=True, n_stages=7)


@dataclass(frozen=True)
class NARConfig:
    n_text_tokens: int
    codebook_size: int
    n_codebooks: int = 8
    transformer: TransformerConfig = field(default_factory=_default_tf)
    prompt_range: tuple[float, float] = (0.25, 0.5)

    def __post_init__(self) -> None:
        t = self.transformer
        if not t.adaptive_norm or t.n_stages != self.n_codebooks - 1:
            raise ValueError(f"the NAR transformer needs adaptive_norm with n_stages = {self.n_codebooks - 1}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prompt_range"] = list(self.prompt_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NARConfig":
        d = dict(d)
        d["transformer"] = TransformerConfig(**d["transformer"])
        d["prompt_range"] = tuple(d.get("prompt_range", (0.25, 0.5)))
        return cls(**d)


class CodecNAR(nn.Module):
    def __init__(self, cfg: NARConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.transformer.d_model
        self.text_eos = cfg.n_text_tokens
        self.text_pad = cfg.n_text_tokens + 1
        self.audio_pad = cfg.codebook_size
        self.text_emb = nn.Embedding(cfg.n_text_tokens + 2, d)
        self.audio_emb = nn.ModuleList(nn.Embedding(cfg.codebook_size + 1, d) for _ in range(cfg.n_codebooks))
        for emb in [self.text_emb, *self.audio_emb]:
            nn.init.normal_(emb.weight, std=d**-0.5)
        self.text_pos = SinusoidalPositions(d, cfg.transformer.dropout)
        self.audio_pos = SinusoidalPositions(d, cfg.transformer.dropout)
        self.decoder = Transformer(cfg.transformer)

    def _text(self, text: Tensor, text_lens: Tensor) -> tuple[Tensor, Tensor]:
        ids, pad = text_with_eos(text, text_lens, self.text_eos, self.text_pad)
        return self.text_pos(self.text_emb(ids)), pad

    def forward(
        self,
        text: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        codes: Tensor,
        code_lens: Tensor,
        stage: Tensor,
    ) -> Tensor:
        """Logits [B, T, V] for codebook `stage[b]` (1..N-1) of the target frames.

        `codes` [B, N, T] needs valid values only in codebooks below each item's stage.
        """
        dev = codes.device
        n = self.cfg.n_codebooks
        if prompt_codes.shape[1] != n or codes.shape[1] < 1:
            raise ValueError(f"prompt_codes must be [B, {n}, Tp], got {tuple(prompt_codes.shape)}")
        if bool((stage < 1).any()) or bool((stage >= n).any()):
            raise ValueError(f"stage must be in 1..{n - 1}")
        b, tp_max, t_max = codes.shape[0], prompt_codes.shape[2], codes.shape[2]
        x_text, pad_text = self._text(text, text_lens)
        pc = prompt_codes.clamp(0, self.audio_pad)
        x_prompt = sum(self.audio_emb[k](pc[:, k]) for k in range(n))
        cd = codes.clamp(0, self.audio_pad)
        x_tgt = torch.zeros(b, t_max, x_text.shape[2], device=dev, dtype=x_prompt.dtype)
        for k in range(min(n - 1, codes.shape[1])):
            use = (k < stage).view(-1, 1, 1).to(x_tgt.dtype)
            x_tgt = x_tgt + use * self.audio_emb[k](cd[:, k])
        pos_prompt = torch.arange(tp_max, device=dev).expand(b, -1)
        pos_tgt = prompt_lens.view(-1, 1).to(dev) + torch.arange(t_max, device=dev).view(1, -1)
        x_audio = self.audio_pos(torch.cat([x_prompt, x_tgt], dim=1), positions=torch.cat([pos_prompt, pos_tgt], dim=1))
        pad_prompt = pos_prompt >= prompt_lens.view(-1, 1).to(dev)
        pad_tgt = torch.arange(t_max, device=dev).view(1, -1) >= code_lens.view(-1, 1).to(dev)
        h = self.decoder(
            torch.cat([x_text, x_audio], dim=1),
            causal=False,
            key_padding_mask=torch.cat([pad_text, pad_prompt, pad_tgt], dim=1),
            stage=stage - 1,
        )
        h_tgt = h[:, x_text.shape[1] + tp_max :]
        weights = torch.stack([e.weight[: self.cfg.codebook_size] for e in self.audio_emb])  # [N, V, D]
        return torch.einsum("btd,bvd->btv", h_tgt, weights[stage].to(h_tgt.dtype))

    # ----------------------------------------------------------------- training
    def split_prompt(self, codes: Tensor, code_lens: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Cut each utterance into (prompt prefix, target rest), padded batches."""
        lo, hi = self.cfg.prompt_range
        prompts, targets, p_lens, t_lens = [], [], [], []
        for i, n in enumerate(code_lens.tolist()):
            a, b = max(1, int(lo * n)), max(1, int(hi * n))
            p = a if b <= a else int(torch.randint(a, b + 1, (1,), generator=generator))
            p = min(p, n - 1) if n > 1 else 0
            prompts.append(codes[i, :, :p])
            targets.append(codes[i, :, p:n])
            p_lens.append(p)
            t_lens.append(n - p)
        return _pad(prompts, self.audio_pad), torch.tensor(p_lens), _pad(targets, self.audio_pad), torch.tensor(t_lens)

    def loss(
        self, text: Tensor, text_lens: Tensor, codes: Tensor, code_lens: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        dev = codes.device
        prompt, p_lens, tgt, t_lens = self.split_prompt(codes, code_lens, generator)
        prompt, p_lens, tgt, t_lens = prompt.to(dev), p_lens.to(dev), tgt.to(dev), t_lens.to(dev)
        stage = torch.randint(1, self.cfg.n_codebooks, (codes.shape[0],), generator=generator).to(dev)
        logits = self(text, text_lens, prompt, p_lens, tgt, t_lens, stage)
        target = tgt[torch.arange(tgt.shape[0], device=dev), stage]  # [B, T]
        valid = torch.arange(tgt.shape[2], device=dev).view(1, -1) < t_lens.view(-1, 1)
        lg, tg = logits.float()[valid], target[valid]
        loss = F.cross_entropy(lg, tg)
        with torch.no_grad():
            acc = (lg.argmax(-1) == tg).float().mean().item()
        return loss, {"loss": loss.item(), "accuracy": acc, "tokens": int(tg.numel())}

    # ---------------------------------------------------------------- inference
    @torch.no_grad()
    def generate(
        self, text: Tensor, text_lens: Tensor, prompt_codes: Tensor, prompt_lens: Tensor, first: Tensor, code_lens: Tensor
    ) -> Tensor:
        """first [B, T] or [B, 1, T] (codebook 1) -> codes [B, N, T], greedy per stage."""
        if first.dim() == 3:
            first = first[:, 0]
        b, t = first.shape
        n = self.cfg.n_codebooks
        codes = first.new_full((b, n, t), self.audio_pad)
        codes[:, 0] = first
        for j in range(1, n):
            stage = torch.full((b,), j, dtype=torch.long, device=first.device)
            logits = self(text, text_lens, prompt_codes, prompt_lens, codes, code_lens, stage)
            codes[:, j] = logits.argmax(-1)
        valid = torch.arange(t, device=first.device).view(1, 1, -1) < code_lens.view(-1, 1, 1).to(first.device)
        return torch.where(valid, codes, torch.full_like(codes, self.audio_pad))


def _pad(seqs: list[Tensor], value: int) -> Tensor:
    """[K, T_i] tensors -> [B, K, max T] padded with `value`."""
    k = seqs[0].shape[0]
    t = max(1, max(s.shape[1] for s in seqs))
    out = seqs[0].new_full((len(seqs), k, t), value)
    for i, s in enumerate(seqs):
        out[i, :, : s.shape[1]] = s
    return out
