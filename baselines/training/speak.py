"""The "does it speak" check: synthesise a few held-out texts and score them with the harness's
WER scorer (`halle_bench.metrics` "wer", Whisper), logged with the step: `val_wer` and
`val_cer` (corpus CER: character edits / reference characters, both normalised).

The check speaks the shortest held-out texts, each with the audio + transcript of the shortest
*other* held-out item as the voice prompt (never its own audio, which would hold the first
words of the answer). The
number is the corpus WER (total edits / total reference words) over those texts, with the
same normaliser as the benchmark, so that it reads like the leaderboard's `wer`. A synthesis
that fails counts as all words deleted (WER 1 for that text) and is counted in `speak_failed`.

Sampling: greedy by default (`[speak] top_k = 1`), i.e. the model's single most likely
continuation, so that the number moves with what the model has learned rather than with the
luck of the draws (issue 16: a memorised model scored WER 0.38 greedy and 1.09 at top-k 50).
`top_k`, `temperature` and `max_len_ratio` (default: the benchmark system's cap) can be set.

Time budget (`[speak] budget_s`, default 120 s): a babbling model runs every item to its
length cap, which once took the check past 10 minutes. The check stops starting new items
once `budget_s` seconds have passed since it began (the first item always runs, so there
is a number) and scores what it has; `speak_done` says how many items that was (of
`speak_items`). An item that was not synthesised counts in neither WER nor CER.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

# (text, prompt_wav, prompt_sr, prompt_text, seed) -> (wav, sr)
Synth = Callable[[str, np.ndarray, int, str, int], tuple[np.ndarray, int]]


@dataclass
class SpeakItem:
    id: str
    text: str
    prompt_wav: np.ndarray
    prompt_sr: int
    prompt_text: str


def pair_prompts(items: Sequence[tuple[str, str, np.ndarray, int]], n: int) -> list[SpeakItem]:
    """(id, text, wav, sr) held-out items -> the n shortest texts, each prompted by the shortest
    *other* item (ties broken by id, so the choice is stable).

    Short on both sides on purpose: the benchmark prompts with ~3 s, and a model trained on
    clips up to `max_seconds` should be asked for texts it could have been trained on. A
    held-out set of long clips only would otherwise give prompts longer than any training clip."""
    items = list(items)
    if len(items) < 2:
        raise ValueError("the speak check needs at least 2 held-out items (one text, another's voice prompt)")
    by_len = sorted(items, key=lambda it: (len(it[2]) / it[3], it[0]))
    out = []
    for uid, text, _, _ in by_len[: min(n, len(by_len))]:
        _, ptext, pwav, psr = next(it for it in by_len if it[0] != uid)
        out.append(SpeakItem(uid, text, pwav, psr, ptext))
    return out


# [speak] keys of the check itself; the others (asr, normalizer, ...) configure the WER scorer
OWN_KEYS = ("every", "items", "budget_s", "top_k", "temperature", "max_len_ratio")
DEFAULT_BUDGET_S = 120.0


def sampling_options(speak: dict[str, Any] | None, max_len_ratio: float):
    """The check's `SamplingOptions` from the [speak] table: greedy unless `top_k` / `temperature`
    say otherwise; `max_len_ratio` is the model's benchmark default unless set."""
    from halle_bench.baselines.sampling import SamplingOptions

    sp = speak or {}
    return SamplingOptions(top_k=int(sp.get("top_k", 1)), temperature=float(sp.get("temperature", 1.0)),
                           max_len_ratio=float(sp.get("max_len_ratio", max_len_ratio)))


@dataclass
class SpeakCheck:
    """`scorer_config`: the WER scorer's config; the check's own keys (`OWN_KEYS`: the [speak]
    table may be passed whole) are taken out of it, and `budget_s` from there is used."""

    items: list[SpeakItem]
    scorer_config: dict[str, Any] = field(default_factory=lambda: {"asr": "whisper-base"})
    device: str = "cpu"
    seed: int = 0
    budget_s: float = DEFAULT_BUDGET_S
    clock: Callable[[], float] = time.perf_counter
    _scorer: Any = None
    errors: list[str] = field(default_factory=list)  # the last call's failed items, "id: why"

    def __post_init__(self) -> None:
        cfg = dict(self.scorer_config)
        if "budget_s" in cfg:
            self.budget_s = float(cfg["budget_s"])
        self.scorer_config = {k: v for k, v in cfg.items() if k not in OWN_KEYS}

    def scorer(self):
        if self._scorer is None:
            from halle_bench.metrics import build_scorer

            self._scorer = build_scorer("wer", dict(self.scorer_config))
            self._scorer.load(self.device)
        return self._scorer

    def __call__(self, synth: Synth) -> dict[str, float]:
        from halle_bench.audio import resample
        from halle_bench.metrics import ScoreItem

        sc = self.scorer()
        norm = getattr(sc, "normalizer", None) or (lambda t: t)
        edits = words = char_edits = chars = 0
        failed = 0
        batch, done = [], 0
        self.errors = []

        def all_deleted(text: str) -> None:  # a failed item: every word and character of it missed
            nonlocal edits, words, char_edits, chars
            ref = norm(text).strip()
            edits, words = edits + len(ref.split()), words + len(ref.split())
            char_edits, chars = char_edits + len(ref), chars + len(ref)

        t0 = self.clock()
        for k, it in enumerate(self.items):
            if k > 0 and self.clock() - t0 >= self.budget_s:
                break
            done += 1
            try:
                wav, sr = synth(it.text, it.prompt_wav, it.prompt_sr, it.prompt_text, self.seed + k)
                wav = np.asarray(wav, dtype=np.float32).reshape(-1)
                if sr != 16000:
                    wav = resample(wav, sr, 16000)
                if wav.size == 0 or not np.isfinite(wav).all():
                    raise ValueError("empty or non-finite audio")
                batch.append(ScoreItem(system="train", utt_id=it.id, audio=wav, sample_rate=16000, text=it.text))
            except Exception as e:  # noqa: BLE001  (an untrained model may fail to stop or produce nothing)
                self.errors.append(f"{it.id}: {e}")
                failed += 1
                all_deleted(it.text)
        outs = sc.score(batch) if batch else []
        for o, item in zip(outs, batch):
            if o.error:
                self.errors.append(f"{item.utt_id}: scoring: {o.error}")
                failed += 1
                all_deleted(item.text)
                continue
            v = o.values
            edits += int(v["subs"]) + int(v["dels"]) + int(v["ins"])
            words += int(v["n_ref_words"])
            char_edits += int(v["char_errors"])
            chars += int(v["n_ref_chars"])
        return {"val_wer": edits / max(1, words), "val_cer": char_edits / max(1, chars),
                "speak_items": len(self.items), "speak_done": done, "speak_failed": failed,
                "speak_seconds": round(self.clock() - t0, 3)}

    def close(self) -> None:
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None


__all__ = ["SpeakCheck", "SpeakItem", "pair_prompts", "sampling_options", "Synth", "OWN_KEYS", "DEFAULT_BUDGET_S"]
