"""The "does it speak" check: synthesise a few held-out texts and score them with the harness's
WER scorer (`halle_bench.metrics` "wer", Whisper), logged with the step.

The check speaks the shortest held-out texts, each with the audio + transcript of the shortest
*other* held-out item as the voice prompt (never its own audio, which would hold the first
words of the answer). The
number is the corpus WER (total edits / total reference words) over those texts, with the
same normaliser as the benchmark, so that it reads like the leaderboard's `wer`. A synthesis
that fails counts as all words deleted (WER 1 for that text) and is counted in `speak_failed`.
"""

from __future__ import annotations

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


@dataclass
class SpeakCheck:
    items: list[SpeakItem]
    scorer_config: dict[str, Any] = field(default_factory=lambda: {"asr": "whisper-base"})
    device: str = "cpu"
    seed: int = 0
    _scorer: Any = None

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
        edits = words = 0
        failed = 0
        batch, n_words_failed = [], 0
        for k, it in enumerate(self.items):
            try:
                wav, sr = synth(it.text, it.prompt_wav, it.prompt_sr, it.prompt_text, self.seed + k)
                wav = np.asarray(wav, dtype=np.float32).reshape(-1)
                if sr != 16000:
                    wav = resample(wav, sr, 16000)
                if wav.size == 0 or not np.isfinite(wav).all():
                    raise ValueError("empty or non-finite audio")
                batch.append(ScoreItem(system="train", utt_id=it.id, audio=wav, sample_rate=16000, text=it.text))
            except Exception:  # noqa: BLE001  (an untrained model may fail to stop or produce nothing)
                failed += 1
                n_words_failed += len(it.text.split())
        outs = sc.score(batch) if batch else []
        for o in outs:
            if o.error:
                failed += 1
                continue
            v = o.values
            edits += int(v["subs"]) + int(v["dels"]) + int(v["ins"])
            words += int(v["n_ref_words"])
        edits += n_words_failed
        words += n_words_failed
        return {"val_wer": edits / max(1, words), "speak_items": len(self.items), "speak_failed": failed}

    def close(self) -> None:
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None


__all__ = ["SpeakCheck", "SpeakItem", "pair_prompts", "Synth"]
