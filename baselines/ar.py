"""The autoregressive codec language model, shared by VALL-E and HALL-E.

A decoder-only transformer over one sequence per item:

    [text_1 .. text_L, TEXT_EOS, audio_1 .. audio_S]   -> predicts audio_1 .. audio_S, AUDIO_EOS

Text and audio have their own embeddings and their own sinusoidal positions (both
start at 0). The output layer is tied to the audio embedding. With
`n_codebooks > 1` (HALL-E's 8 Hz level) the audio frames follow a MusicGen-style
*delay pattern*: codebook k is shifted right by k frames, one step predicts every
codebook (one head each, tied to that codebook's embedding), the input of a step
is the sum of its codebooks' embeddings. With one codebook this is plain VALL-E.

Token ids: text 0..n_text-1, TEXT_EOS = n_text, TEXT_PAD = n_text + 1. Audio per
codebook 0..V-1, AUDIO_EOS = V, DELAY_FILL = V + 1 (the empty top-left corner of the
delay pattern; never predicted, never in the loss). Logits are over V + 1 classes.

Batching: text is padded to the longest text (+1 for its EOS), audio to the longest
audio; padding sits *inside* the sequence (between text and audio, after a short
prompt) and is masked from attention, while every item keeps its own positions. So
a batch gives the same tokens as running each item alone.

`generate` continues a prompt: text = prompt text + target text, prompt_codes = the
prompt's codec frames; it returns only the new frames. Each item stops at its EOS,
or at its cap (`SamplingOptions.max_frames(text_len)` new frames), recorded in
`last_info`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .sampling import SamplingOptions, sample_next
from .transformer import SinusoidalPositions, Transformer, TransformerConfig, decoding_backends


@dataclass(frozen=True)
class ARConfig:
    n_text_tokens: int
    codebook_size: int
    n_codebooks: int = 1
    transformer: TransformerConfig = field(default_factory=TransformerConfig.tiny)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ARConfig":
        d = dict(d)
        d["transformer"] = TransformerConfig(**d["transformer"])
        return cls(**d)


def delay_pattern(codes: Tensor, lens: Tensor, after: int, fill: int, extra: int = 1) -> Tensor:
    """codes [B, K, T] -> delayed [B, K, T + K - 1 + extra].

    out[b, k, s] = codes[b, k, s - k] when 0 <= s - k < lens[b]; `fill` when s < k;
    `after` otherwise (EOS for training targets, -1 for "not known yet" in generation).
    """
    b, k, t = codes.shape
    s_len = t + k - 1 + extra
    s = torch.arange(s_len, device=codes.device).view(1, 1, -1)
    kk = torch.arange(k, device=codes.device).view(1, -1, 1)
    src = s - kk  # [1, K, S]
    valid = (src >= 0) & (src < lens.view(-1, 1, 1))
    gathered = codes.gather(2, src.clamp(0, max(t - 1, 0)).expand(b, k, s_len)) if t > 0 else codes.new_zeros(b, k, s_len)
    out = torch.where(valid, gathered, torch.full_like(gathered, after))
    return torch.where(src < 0, torch.full_like(out, fill), out)


def undelay(delayed: Tensor, length: int) -> Tensor:
    """One item's delayed [K, S] -> codes [K, length] (codes[k, t] = delayed[k, t + k])."""
    k = delayed.shape[0]
    return torch.stack([delayed[i, i : i + length] for i in range(k)]) if length > 0 else delayed.new_zeros(k, 0)


def text_with_eos(text: Tensor, text_lens: Tensor, eos: int, pad: int) -> tuple[Tensor, Tensor]:
    """[B, L] padded ids -> [B, L+1] ids with EOS right after each item's text and `pad`
    beyond it, plus the padding mask (True = pad). Shared by the AR and the NAR."""
    b, l = text.shape
    pos = torch.arange(l + 1, device=text.device).view(1, -1)
    lens = text_lens.view(-1, 1)
    ids = torch.cat([text, text.new_full((b, 1), pad)], dim=1)
    ids = torch.where(pos < lens, ids, torch.full_like(ids, pad))
    ids = torch.where(pos == lens, torch.full_like(ids, eos), ids)
    return ids, pos > lens


class CodecAR(nn.Module):
    def __init__(self, cfg: ARConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.transformer.d_model
        self.text_eos = cfg.n_text_tokens
        self.text_pad = cfg.n_text_tokens + 1
        self.audio_eos = cfg.codebook_size
        self.delay_fill = cfg.codebook_size + 1
        self.text_emb = nn.Embedding(cfg.n_text_tokens + 2, d)
        self.audio_emb = nn.ModuleList(nn.Embedding(cfg.codebook_size + 2, d) for _ in range(cfg.n_codebooks))
        self.text_pos = SinusoidalPositions(d, cfg.transformer.dropout)
        self.audio_pos = SinusoidalPositions(d, cfg.transformer.dropout)
        self.decoder = Transformer(cfg.transformer)
        # Embeddings are scaled by sqrt(d) on input (SinusoidalPositions) and reused as
        # output weights: std d^-1/2 makes both the inputs and the initial logits O(1).
        for emb in [self.text_emb, *self.audio_emb]:
            nn.init.normal_(emb.weight, std=d**-0.5)
        self.last_info: list[dict[str, Any]] = []
        # Training only (align_prior.py): set by a training config's [align]; never saved.
        self.align_prior = None

    # ----------------------------------------------------------------- pieces
    def _text(self, text: Tensor, text_lens: Tensor) -> tuple[Tensor, Tensor]:
        """[B, L] ids -> embedded [B, L+1, D] with EOS at text_lens, and its pad mask."""
        ids, pad = text_with_eos(text, text_lens, self.text_eos, self.text_pad)
        return self.text_pos(self.text_emb(ids)), pad

    def _audio(self, tokens: Tensor, offset: int | Tensor = 0, positions: Tensor | None = None) -> Tensor:
        """[B, K, S] ids -> [B, S, D] (sum of the codebooks' embeddings + positions)."""
        tokens = tokens.clamp(min=0)  # "unknown" (-1) slots are padding, masked anyway
        x = self.audio_emb[0](tokens[:, 0])
        for k in range(1, self.cfg.n_codebooks):
            x = x + self.audio_emb[k](tokens[:, k])
        return self.audio_pos(x, offset=offset, positions=positions)

    def _logits(self, h: Tensor) -> Tensor:
        """[B, S, D] -> [B, K, S, V+1], each head tied to its codebook's embedding."""
        v1 = self.cfg.codebook_size + 1
        return torch.stack([F.linear(h, emb.weight[:v1]) for emb in self.audio_emb], dim=1)

    # --------------------------------------------------------------- training
    def _check(self, codes: Tensor) -> None:
        if codes.dim() != 3 or codes.shape[1] != self.cfg.n_codebooks:
            raise ValueError(f"codes must be [B, {self.cfg.n_codebooks}, T], got {tuple(codes.shape)}")

    def forward(self, text: Tensor, text_lens: Tensor, codes: Tensor, code_lens: Tensor) -> Tensor:
        """Teacher-forced logits [B, K, S+1, V+1] for the delayed targets (see `targets`)."""
        self._check(codes)
        k = self.cfg.n_codebooks
        x_text, pad_text = self._text(text, text_lens)
        delayed = delay_pattern(codes, code_lens, self.audio_eos, self.delay_fill, extra=1)
        s_max = codes.shape[2] + k - 1
        inp = delayed[:, :, :s_max]
        pad_audio = torch.arange(s_max, device=codes.device).view(1, -1) >= (code_lens + k - 1).view(-1, 1)
        x = torch.cat([x_text, self._audio(inp)], dim=1)
        h = self.decoder(x, causal=True, key_padding_mask=torch.cat([pad_text, pad_audio], dim=1))
        h_eos = h[torch.arange(h.shape[0], device=h.device), text_lens]  # predicts the first frame
        h = torch.cat([h_eos.unsqueeze(1), h[:, x_text.shape[1] :]], dim=1)
        return self._logits(h)

    def targets(self, codes: Tensor, code_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Delayed targets [B, K, S+1] and the mask of positions that count in the loss."""
        k = self.cfg.n_codebooks
        tgt = delay_pattern(codes, code_lens, self.audio_eos, self.delay_fill, extra=1)
        s = torch.arange(tgt.shape[2], device=codes.device).view(1, 1, -1)
        valid = (s <= (code_lens + k - 1).view(-1, 1, 1)) & (tgt != self.delay_fill)
        return tgt, valid

    def loss(self, text: Tensor, text_lens: Tensor, codes: Tensor, code_lens: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Mean cross-entropy over every real target (audio frames and EOS), with accuracy
        (top-1 and top-10). With `align_prior` set and in training mode, the guided
        attention penalty (align_prior.py) is added and reported as `align`; `loss` in the
        returned dict stays the cross-entropy, so curves compare across recipes."""
        prior = self.align_prior if self.training else None
        if prior is None or prior.weight == 0:
            logits = self(text, text_lens, codes, code_lens)
            extra = None
        else:
            from .align_prior import capture_attention, guided_attention_loss

            with capture_attention(self.decoder, prior.layers, prior.heads) as mods:
                logits = self(text, text_lens, codes, code_lens)
                n_text = int(text.shape[1]) + 1
                audio_lens = code_lens + self.cfg.n_codebooks - 1
                extra = sum(guided_attention_loss(m.captured, text_lens, audio_lens, n_text, prior.sigma)
                            for m in mods.values()) / len(mods)
        tgt, valid = self.targets(codes, code_lens)
        lg = logits.float()[valid]
        tg = tgt[valid]
        loss = F.cross_entropy(lg, tg)
        with torch.no_grad():
            acc = (lg.argmax(-1) == tg).float().mean().item()
            top10 = (lg.topk(min(10, lg.shape[-1]), dim=-1).indices == tg.unsqueeze(-1)).any(-1).float().mean().item()
        info = {"loss": loss.item(), "accuracy": acc, "top10": top10, "tokens": int(tg.numel())}
        if extra is not None:
            info["align"] = float(extra.detach())
            loss = loss + prior.weight * extra
        return loss, info

    # ------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, *args, **kwargs) -> list[Tensor]:
        """Continue each item's prompt (see `_generate`); runs under `decoding_backends()`."""
        with decoding_backends():
            return self._generate(*args, **kwargs)

    def _generate(
        self,
        text: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        opts: SamplingOptions,
        generator: torch.Generator | list[torch.Generator] | None = None,
        use_cache: bool = True,
    ) -> list[Tensor]:
        """Continue each item's prompt; returns its new frames, LongTensor [K, T_i] each.

        `generator`: one for the batch, or a list with one per item (then an item's
        tokens do not depend on what else is in the batch).
        """
        self._check(prompt_codes)
        dev = text.device
        b = text.shape[0]
        kcb = self.cfg.n_codebooks
        tp_max = prompt_codes.shape[2]
        tp = prompt_lens.to(dev).long()
        rows = torch.arange(b, device=dev)
        caps = torch.tensor([opts.max_frames(int(n)) for n in text_lens.tolist()], device=dev)
        # known[b, k, s]: the prompt's value in delayed column s, DELAY_FILL for s < k, -1 unknown
        known = delay_pattern(prompt_codes, tp, -1, self.delay_fill, extra=1)
        x_text, pad_text = self._text(text, text_lens)
        prefix = known[:, :, :tp_max]
        pad_prefix = torch.arange(tp_max, device=dev).view(1, -1) >= tp.view(-1, 1)
        x0 = torch.cat([x_text, self._audio(prefix)], dim=1)
        pad0 = torch.cat([pad_text, pad_prefix], dim=1)
        # The hidden state that predicts column tp[b]: the prompt's last frame, or TEXT_EOS.
        last_idx = torch.where(tp > 0, x_text.shape[1] + tp - 1, text_lens.to(dev).long())

        cache = self.decoder.new_cache(capacity=x0.shape[1] + int(caps.max()) + kcb + 1) if use_cache else None
        h = self.decoder(x0, causal=True, key_padding_mask=pad0, cache=cache)
        h_last = h[rows, last_idx]

        s = tp.clone()  # delayed column each item predicts next
        end = torch.full((b,), -1, dtype=torch.long, device=dev)  # codebook-0 length once known
        hit_cap = torch.zeros(b, dtype=torch.bool, device=dev)
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        cols: list[Tensor] = []
        # uncached path: all audio columns so far, with their positions and padding
        all_tok, all_pos, all_pad = prefix, torch.arange(tp_max, device=dev).expand(b, -1), pad_prefix
        kk = torch.arange(kcb, device=dev)
        while not bool(done.all()):
            logits = self._logits(h_last.unsqueeze(1))[:, :, 0].float()  # [B, K, V+1]
            if kcb > 1:  # only codebook 0 decides the end
                logits[:, 1:, self.audio_eos] = float("-inf")
            if isinstance(generator, (list, tuple)):  # one generator per item: batch-independent draws
                tok = torch.stack(
                    [torch.stack([sample_next(logits[r : r + 1, i], opts, generator[r])[0] for i in range(kcb)]) for r in range(b)]
                )
            else:
                tok = torch.stack([sample_next(logits[:, i], opts, generator) for i in range(kcb)], dim=1)
            # the length cap ends codebook 0
            cap_now = (end < 0) & (s - tp >= caps)
            hit_cap |= cap_now
            tok[:, 0] = torch.where(cap_now, torch.full_like(tok[:, 0], self.audio_eos), tok[:, 0])
            end = torch.where((end < 0) & (tok[:, 0] == self.audio_eos), s, end)
            src = s.view(-1, 1) - kk.view(1, -1)  # [B, K] frame index per codebook
            col = s.clamp(max=known.shape[2] - 1)
            kn = known[rows, :, col]  # [B, K]
            tok = torch.where((kn >= 0) & (s.view(-1, 1) < known.shape[2]), kn, tok)
            past_end = (end.view(-1, 1) >= 0) & (src >= end.view(-1, 1))
            tok = torch.where(past_end, torch.full_like(tok, self.audio_eos), tok)
            tok = torch.where(done.view(-1, 1), torch.full_like(tok, self.audio_eos), tok)
            cols.append(tok)
            newly_done = (end >= 0) & (s >= end + kcb - 1)
            pad_new = done.clone()  # finished items feed padding
            done |= newly_done
            if bool(done.all()):
                break
            x_new_tok = tok.unsqueeze(2)  # [B, K, 1]
            if use_cache:
                h = self.decoder(self._audio(x_new_tok, offset=s), causal=True, key_padding_mask=pad_new.view(-1, 1), cache=cache)
            else:
                all_tok = torch.cat([all_tok, x_new_tok], dim=2)
                all_pos = torch.cat([all_pos, s.view(-1, 1)], dim=1)
                all_pad = torch.cat([all_pad, pad_new.view(-1, 1)], dim=1)
                x = torch.cat([x_text, self._audio(all_tok, positions=all_pos)], dim=1)
                h = self.decoder(x, causal=True, key_padding_mask=torch.cat([pad_text, all_pad], dim=1))
            h_last = h[:, -1]
            s = s + (~done).long()

        gen = torch.stack(cols, dim=2) if cols else prompt_codes.new_zeros(b, kcb, 0)  # [B, K, steps]
        out: list[Tensor] = []
        self.last_info = []
        for i in range(b):
            n_new = int(end[i] - tp[i])
            p = int(tp[i])
            # delayed columns of item i: known prompt columns, then the generated ones
            full = torch.cat([known[i, :, :p], gen[i]], dim=1)
            frames = undelay(full, p + n_new)[:, p:]
            out.append(frames.clone())
            self.last_info.append({"frames": n_new, "hit_cap": bool(hit_cap[i]), "eos": not bool(hit_cap[i])})
        return out

