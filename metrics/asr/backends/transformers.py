"""Hugging Face transformers engine: a local Whisper folder as `save_pretrained` writes
it (config.json, model.safetensors or pytorch_model.bin, tokenizer files), e.g.
openai/whisper-large-v3 as seed-tts-eval scores with it. Nothing is downloaded
(`local_files_only`).

Decoding runs transformers' generic `GenerationMixin.generate` (beam search or
sampling), not Whisper's own long-form `generate`: windowing, fallback and merging are
ours and shared by every engine, and the prompt and suppressed tokens are set
explicitly so that a folder's generation_config (forced ids, timestamp rules) cannot
change them. avg_logprob and no_speech_prob come from one teacher-forced pass over
the chosen sequence, as openai-whisper defines them. fp16 on CUDA, float32 on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from halle_bench.errors import ConfigError

from ...base import ModelRef
from .base import Decoded, compression_ratio, log_mels, num_languages_for, prompt_tokens, register_backend


@register_backend("transformers")
class TransformersBackend:
    name = "transformers"
    formats = ("transformers",)

    def __init__(self, folder: str | Path, ref: ModelRef, settings, device: str = "cpu",
                 compute_type: str = "auto", threads: int | None = None):
        self.folder = Path(folder)
        self._ref = ref
        self.s = settings
        self.device = device
        if compute_type not in ("auto", "float16", "bfloat16", "float32"):
            raise ConfigError(f"[metrics] wer: the transformers backend computes in float16, bfloat16 or float32; compute_type {compute_type!r} is not available")
        self.compute_type = compute_type
        self.threads = threads
        self._model = None

    @property
    def model_ref(self) -> ModelRef:
        return self._ref

    def _dtype_name(self) -> str:
        if self.compute_type == "auto":
            return "float16" if self.device.startswith("cuda") else "float32"
        return self.compute_type

    def settings(self) -> dict[str, Any]:
        import transformers

        return {"engine": f"transformers {transformers.__version__}", "compute_type": self._dtype_name()}

    @property
    def multilingual(self) -> bool:
        self.load()
        return self._model.config.vocab_size >= 51865

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoTokenizer, WhisperForConditionalGeneration

        dtype = getattr(torch, self._dtype_name())
        try:
            model = WhisperForConditionalGeneration.from_pretrained(str(self.folder), local_files_only=True, dtype=dtype)
            hf_tok = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load the transformers Whisper folder {self.folder}: {e}") from None
        model.to(self.device).eval()
        n_vocab = int(model.config.vocab_size)
        tok, p = prompt_tokens(n_vocab >= 51865, num_languages_for(n_vocab), self.s.language)
        got = hf_tok.convert_tokens_to_ids("<|startoftranscript|>")
        if got != p.sot_sequence[0]:
            raise ConfigError(f"{self.folder}: the tokenizer's <|startoftranscript|> is {got}, the model expects {p.sot_sequence[0]} (tokenizer of another Whisper?)")
        self._model, self._hf_tok, self._p = model, hf_tok, p

    def _generate(self, feats, temperature: float):
        import torch
        from transformers import GenerationConfig, GenerationMixin

        s, p = self.s, self._p
        prompt = torch.tensor([list(p.sot_sequence)] * feats.shape[0], device=self.device)
        sampling = temperature > 0
        cfg = GenerationConfig(
            max_length=self._max_len(), num_beams=1 if sampling else max(1, s.beam_size), do_sample=sampling,
            temperature=temperature if sampling else None, top_k=0 if sampling else None,
            num_return_sequences=s.best_of if sampling else 1, eos_token_id=p.eot, pad_token_id=p.eot,
            decoder_start_token_id=p.sot_sequence[0], suppress_tokens=list(p.suppress), begin_suppress_tokens=list(p.blank),
        )
        # the generic generate, not WhisperGenerationMixin's long-form one (see the module docstring)
        return GenerationMixin.generate(self._model, input_features=feats, decoder_input_ids=prompt, generation_config=cfg)

    def _max_len(self) -> int:
        return min(448, int(self._model.config.max_target_positions))

    def _scores(self, feats, seqs: list[list[int]]):
        """(avg_logprob, no_speech_prob) per sequence from one teacher-forced pass."""
        import torch

        p = self._p
        n0 = len(p.sot_sequence)
        width = min(max(len(q) for q in seqs) + 1, self._max_len())
        ids = torch.full((len(seqs), width), p.eot, dtype=torch.long, device=self.device)
        for i, q in enumerate(seqs):
            ids[i, : len(q)] = torch.tensor(q, device=self.device)
        logits = self._model(input_features=feats, decoder_input_ids=ids).logits.float()
        no_speech = torch.softmax(logits[:, 0], dim=-1)[:, p.no_speech] if p.no_speech is not None else torch.zeros(len(seqs))
        logits[:, :, list(p.suppress)] = -np.inf
        logp = torch.log_softmax(logits, dim=-1)
        out = []
        for i, q in enumerate(seqs):
            text_len = len(q) - n0
            # log probs of the text tokens and the end token, over (text tokens + 1), as openai-whisper
            # (a sequence cut by the length limit has no end token to score)
            targets = torch.tensor(q[n0:] + ([p.eot] if len(q) < self._max_len() else []), device=self.device)
            lp = logp[i, n0 - 1 : n0 - 1 + len(targets)].gather(1, targets[:, None]).sum()
            out.append((float(lp) / (text_len + 1), float(no_speech[i])))
        return out

    def decode(self, windows: Sequence[np.ndarray], temperature: float, seed: int | None = None) -> list[Decoded]:
        import torch

        self.load()
        p = self._p
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            with torch.inference_mode():
                feats = torch.from_numpy(log_mels(windows, int(self._model.config.num_mel_bins))).to(self.device, self._model.dtype)
                if temperature > 0:
                    if len(windows) != 1:
                        raise ValueError("sampling decodes one window at a time (its seed is its own)")
                    devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
                    with torch.random.fork_rng(devices=devices):
                        torch.manual_seed(int(seed or 0))
                        seqs = self._generate(feats, temperature)
                    feats = feats.repeat_interleave(seqs.shape[0], dim=0)
                else:
                    seqs = self._generate(feats, 0.0)
                rows = []
                for q in seqs.tolist():
                    body = q[len(p.sot_sequence):]
                    cut = body.index(p.eot) if p.eot in body else len(body)
                    rows.append(list(p.sot_sequence) + body[:cut])
                scores = self._scores(feats, rows)
        finally:
            if self.threads:
                torch.set_num_threads(prev)
        results = [(r, sc) for r, sc in zip(rows, scores)]
        if temperature > 0:  # best of the samples
            results = [max(results, key=lambda x: x[1][0])]
        out = []
        for q, (avg, ns) in results:
            text = self._hf_tok.decode(q[len(p.sot_sequence):], skip_special_tokens=True).strip()
            out.append(Decoded(text, avg, compression_ratio(text), ns, temperature))
        return out

    def close(self) -> None:
        self._model = None
