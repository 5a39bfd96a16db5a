"""An alignment prior for the codec LM's attention, during training only.

A decoder-only VALL-E has to discover on its own that audio frame t is about the text near
position t/T x L. Small models on little data learn the audio long before that (issue 16:
the text-shuffle gap of the first pair stayed near zero), so they babble. Attention TTS
models learn alignment several times faster with a *guided attention* loss (Tachibana et
al. 2018, DCTTS): a penalty on attention mass far from the diagonal,

    W[t, n] = 1 - exp(-((n / N - t / T) ** 2) / (2 * sigma ** 2))

where t indexes the audio frames (queries, T of them) and n the text tokens (keys, N of
them, the text EOS included). Here it applies to `heads` heads of the listed decoder
`layers` only; for those heads any mass on audio keys also costs 1, so they become
text-reading heads while the other heads stay free. Inference is unchanged (the model's
config and weights have no trace of it), and it is off unless a training config asks for
it (`[align]` in docs/training.md), so that paper-faithful training stays paper-faithful.
To stop it later in a campaign, resume with `weight = 0` (or without `[align]`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class AlignPrior:
    weight: float = 1.0
    sigma: float = 0.2
    heads: int = 1  # the first `heads` heads of each listed layer
    layers: tuple[int, ...] = (1,)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if self.weight < 0 or self.sigma <= 0 or self.heads < 1 or not self.layers:
            raise ValueError("align prior needs weight >= 0, sigma > 0, heads >= 1 and at least one layer")


def guide_weights(text_lens: Tensor, audio_lens: Tensor, n_text: int, n_audio: int, sigma: float) -> Tensor:
    """W [B, n_audio, n_text + n_audio]: the diagonal penalty on text keys (positions <=
    text_len, EOS included), 1 on every other key. Pure function of the lengths."""
    dev = text_lens.device
    n = torch.arange(n_text, device=dev).view(1, 1, -1).float()
    t = torch.arange(n_audio, device=dev).view(1, -1, 1).float()
    nn_ = (text_lens.view(-1, 1, 1).float() + 1.0)
    tt = audio_lens.view(-1, 1, 1).float().clamp(min=1.0)
    w_text = 1.0 - torch.exp(-((n / nn_ - t / tt) ** 2) / (2 * sigma**2))
    w_text = torch.where(n <= text_lens.view(-1, 1, 1).float(), w_text, torch.ones_like(w_text))
    return torch.cat([w_text, torch.ones(w_text.shape[0], n_audio, n_audio, device=dev)], dim=2)


def guided_attention_loss(probs: Tensor, text_lens: Tensor, audio_lens: Tensor, n_text: int, sigma: float) -> Tensor:
    """probs [B, H, S_all, S_all] of a decoder layer over [text (n_text), audio (S)] ->
    the mean penalised mass per real audio query (0 when every head reads the diagonal)."""
    s = probs.shape[-1] - n_text
    a = probs[:, :, n_text:, :].float()  # audio queries
    w = guide_weights(text_lens, audio_lens, n_text, s, sigma).unsqueeze(1)  # [B, 1, S, S_all]
    per_query = (a * w).sum(-1)  # [B, H, S]
    valid = (torch.arange(s, device=probs.device).view(1, -1) < audio_lens.view(-1, 1)).unsqueeze(1)
    return (per_query * valid).sum() / (valid.sum() * probs.shape[1]).clamp(min=1)


@contextmanager
def capture_attention(decoder: nn.Module, layers: tuple[int, ...], heads: int) -> Iterator[dict[int, nn.Module]]:
    """While active, the listed layers of a `transformer.Transformer` keep the attention
    probabilities of their first `heads` heads (with gradients) in `attn.captured`; yields
    {layer index: its attention module}."""
    mods: dict[int, nn.Module] = {}
    for i in layers:
        if not 0 <= i < len(decoder.layers):
            raise ValueError(f"align prior: layer {i} does not exist (the decoder has {len(decoder.layers)})")
        attn = decoder.layers[i].attn
        attn.capture_heads = min(heads, attn.h)
        attn.captured = None
        mods[i] = attn
    try:
        yield mods
    finally:
        for attn in mods.values():
            attn.capture_heads = 0
            attn.captured = None


__all__ = ["AlignPrior", "guide_weights", "guided_attention_loss", "capture_attention"]
