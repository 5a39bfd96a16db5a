"""The "wer" scorer: Whisper transcript -> normalised WER/CER + long-form text diagnostics.

Per item (all on normalised text): wer, cer, hits, subs, dels, ins, n_ref_words,
n_ref_chars, char_errors, ref_norm, hyp_norm, hyp_raw, and
- ``pos_errors`` / ``pos_words``: errors and reference words per `window_seconds`
  (default 30 s) of the reference. Without word timings, reference word i of N is
  placed at (i + 0.5) / N * duration, i.e. the text is assumed to be spoken at an even
  rate; duration is the item's `duration_ref`, else the reference audio's length, else
  the generated audio's. Substitutions and deletions count at their reference word,
  insertions at the reference word before them (the first word for leading ones;
  see `edit.Alignment.errors_per_ref`). A truncated output shows up as deletions in
  the last windows.
- ``loop_max_repeat``: the largest number of *extra* consecutive copies of any 1- to
  4-word n-gram in the hypothesis, beyond the longest consecutive run the reference
  has of that n-gram or of any other n-gram of the same length (so "down, down, down"
  heard as "town town town" is no loop; an n-gram may otherwise occur once). "we went
  we went we went" against "we went home" gives 2. ``loop`` is true when it reaches
  `LOOP_MIN_EXTRA` (2: three copies in a row where the text has one); a single
  doubled word is a common ASR slip and is not called a loop.

ASR bookkeeping per item: ``asr_model``, ``asr_backend``, ``decoding`` (JSON: every
decoding setting, the engine and its compute type, the protocol preset), ``asr_windows``,
``asr_fallbacks`` (windows re-decoded at a higher temperature), ``asr_cuts`` (window
cuts), ``asr_cut_db`` (the loudest cut's level relative to the clip's RMS in dB, lower =
cleaner; None when not cut), ``asr_overlaps`` (cuts inside speech, decoded with
overlapping windows) and ``asr_merge_fallbacks`` (overlap joins made by time).

`summarize(rows)` aggregates per-item values (the lead's aggregator calls it).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

from .base import NEEDS_TEXT, BaseScorer, ModelRef, ScoreItem, ScoreOutput, register_scorer
from .edit import align_chars, align_words
from .normalizers import Normalizer, get_normalizer

LOOP_MAX_N = 4
LOOP_MIN_EXTRA = 2


# -- pure maths ----------------------------------------------------------------------
def max_runs(words: Sequence[str], max_n: int = LOOP_MAX_N) -> dict[tuple[str, ...], int]:
    """For each n-gram (n = 1..max_n) that repeats back to back, its longest run of
    consecutive copies (>= 2). N-grams that never repeat are left out (run 1)."""
    runs: dict[tuple[str, ...], int] = {}
    L = len(words)
    for n in range(1, max_n + 1):
        # eq[i]: word i equals word i+n; a stretch of r such positions starting at i
        # means the n-gram at i is followed by r // n further copies of itself
        eq = [words[i] == words[i + n] for i in range(L - n)]
        i = 0
        while i < len(eq):
            if not eq[i]:
                i += 1
                continue
            j = i
            while j < len(eq) and eq[j]:
                j += 1
            r = j - i
            for m in range(min(n, r)):  # the n phases of the stretch
                copies = (r - m) // n + 1
                if copies >= 2:
                    g = tuple(words[i + m : i + m + n])
                    runs[g] = max(runs.get(g, 1), copies)
            i = j
    return runs


def loop_extra(ref_words: Sequence[str], hyp_words: Sequence[str], max_n: int = LOOP_MAX_N) -> int:
    """Extra consecutive copies of an n-gram in the hypothesis beyond what the reference allows.

    The allowance for an n-gram is the longest run the reference has of *any* n-gram of
    the same length, not only of that one: a text that says "down, down, down" heard as
    "town town town" is a misrecognised repetition, not a generation loop.
    """
    ref_runs = max_runs(ref_words, max_n)
    longest_by_n: dict[int, int] = {}
    for g, c in ref_runs.items():
        longest_by_n[len(g)] = max(longest_by_n.get(len(g), 1), c)
    best = 0
    for g, c in max_runs(hyp_words, max_n).items():
        allowed = max(ref_runs.get(g, 1), longest_by_n.get(len(g), 1))
        best = max(best, c - allowed)
    return best


def position_profile(errors_per_ref: Sequence[int], duration: float, window_seconds: float) -> tuple[list[int], list[int]]:
    """(errors, reference words) per window of the reference, words spread evenly."""
    n = len(errors_per_ref)
    n_win = max(1, math.ceil(duration / window_seconds - 1e-9)) if duration > 0 else 1
    errs, words = [0] * n_win, [0] * n_win
    for i, e in enumerate(errors_per_ref):
        t = (i + 0.5) / n * duration
        k = min(n_win - 1, int(t // window_seconds)) if duration > 0 else 0
        errs[k] += e
        words[k] += 1
    return errs, words


def text_scores(
    reference: str,
    hypothesis: str,
    normalizer: Normalizer,
    duration: float,
    window_seconds: float = 30.0,
) -> dict[str, Any]:
    """All per-item values from the texts. Raises ValueError for an empty reference."""
    ref = normalizer(reference)
    if not ref:
        raise ValueError("reference text is empty" + (" after normalisation" if reference.strip() else ""))
    hyp = normalizer(hypothesis)
    w = align_words(ref, hyp)
    c = align_chars(ref, hyp)
    pos_errors, pos_words = position_profile(w.errors_per_ref(), duration, window_seconds)
    extra = loop_extra(ref.split(), hyp.split())
    return {
        "wer": w.errors / w.n_ref,
        "cer": c.errors / c.n_ref,
        "hits": w.hits,
        "subs": w.subs,
        "dels": w.dels,
        "ins": w.ins,
        "n_ref_words": w.n_ref,
        "n_ref_chars": c.n_ref,
        "char_errors": c.errors,
        "ref_norm": ref,
        "hyp_norm": hyp,
        "hyp_raw": hypothesis,
        "pos_errors": pos_errors,
        "pos_words": pos_words,
        "loop_max_repeat": extra,
        "loop": extra >= LOOP_MIN_EXTRA,
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Aggregate per-item values (rows without `n_ref_words`, e.g. failed items, are
    skipped; the caller counts failures). Rates are fractions. `wer` is corpus-level
    (sum of errors / sum of reference words), `wer_macro` the mean per-item WER;
    `wer_p95` uses linear interpolation (numpy's default)."""
    ok = [r for r in rows if r.get("n_ref_words")]
    nan = float("nan")
    if not ok:
        keys = ("wer", "wer_macro", "wer_median", "wer_p95", "wer_over_50", "cer", "sub_rate", "del_rate", "ins_rate", "loop_rate")
        return {"n": 0, **{k: nan for k in keys}}
    n_words = sum(r["n_ref_words"] for r in ok)
    subs, dels, ins = (sum(r[k] for r in ok) for k in ("subs", "dels", "ins"))
    wers = np.array([r["wer"] for r in ok], dtype=np.float64)
    n_chars = sum(r.get("n_ref_chars", 0) for r in ok)
    return {
        "n": len(ok),
        "wer": (subs + dels + ins) / n_words,
        "wer_macro": float(wers.mean()),
        "wer_median": float(np.median(wers)),
        "wer_p95": float(np.percentile(wers, 95)),
        "wer_over_50": float(np.mean(wers > 0.5)),
        "cer": sum(r.get("char_errors", 0) for r in ok) / n_chars if n_chars else nan,
        "sub_rate": subs / n_words,
        "del_rate": dels / n_words,
        "ins_rate": ins / n_words,
        "loop_rate": float(np.mean([bool(r.get("loop", False)) for r in ok])),
    }


# -- the scorer ----------------------------------------------------------------------
_KEYS = {"asr", "backend", "compute_type", "protocol", "normalizer", "language", "beam_size", "batch_size",
         "window_seconds", "overlap_seconds", "seed", "threads"}


@register_scorer("wer")
class WERScorer(BaseScorer):
    """Config: asr ("whisper-base" | "whisper-tiny.en" | a CTranslate2 folder | a
    transformers Whisper folder | an openai-whisper .pt), backend ("auto": the format's
    own engine; "ctranslate2" | "openai-whisper" | "transformers"), compute_type ("auto":
    int8 on CPU and float16 on CUDA for ctranslate2, float32/float16 for the torch
    engines), protocol ("seed-tts-eval" | "f5": the peers' presets, see
    metrics/asr/protocols.py), normalizer ("whisper-en"), language ("en"), beam_size
    (5), batch_size (16 windows of <= 30 s per decoder batch), window_seconds (30, the
    position diagnostics' window), overlap_seconds (5: how far a window starts before a
    cut that falls inside speech; 0 never overlaps), seed (0, for the temperature
    fallback), threads (engine CPU threads; default: the engine's own setting; for ctranslate2 on CPU, two
    model replicas sharing the cores, see docs/protocols.md; giving threads makes it one)."""

    name = "wer"
    # 2: loop allowance from the reference's longest run of any same-length n-gram
    # 3: ASR backends (ctranslate2 int8 by default), overlapping windows at cuts inside speech
    version = "3"
    needs = frozenset({NEEDS_TEXT})

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        from halle_bench.errors import ConfigError

        unknown = set(self.config) - _KEYS
        if unknown:
            raise ConfigError(f"[metrics] wer: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
        from .asr import DecodingSettings, LongFormASR, apply_protocol

        try:
            cfg, self.protocol = apply_protocol(self.config)
            self.normalizer = get_normalizer(str(cfg.get("normalizer", "whisper-en")))
            self.window_seconds = float(cfg.get("window_seconds", 30.0))
            decoding = DecodingSettings(
                language=str(cfg.get("language", "en")),
                beam_size=int(cfg.get("beam_size", 5)),
                seed=int(cfg.get("seed", 0)),
                overlap_seconds=float(cfg.get("overlap_seconds", 5.0)),
            )
            # 16 windows per decoder batch (and clips per runner batch): on 2 CPU cores int8
            # beam search over 16 windows ran 1.4x faster than over 8 (bench_peers.py)
            self.batch_size = int(cfg.get("batch_size", 16))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"[metrics] wer: {e}") from None
        if self.window_seconds <= 0:
            raise ConfigError("[metrics] wer: window_seconds must be > 0")
        if not 0 <= decoding.overlap_seconds < decoding.window_seconds - decoding.search_seconds:
            raise ConfigError(f"[metrics] wer: overlap_seconds must be in [0, {decoding.window_seconds - decoding.search_seconds:g})")
        threads = cfg.get("threads")
        self.asr = LongFormASR(
            cfg.get("asr", "whisper-base"),
            backend=str(cfg.get("backend", "auto")),
            batch_size=self.batch_size,
            decoding=decoding,
            compute_type=str(cfg.get("compute_type", "auto")),
            threads=int(threads) if threads else None,
        )

    def load(self, device: str) -> None:
        super().load(device)
        if self.asr.device != device:
            self.asr.close()
            self.asr.device = device
            self.asr._backend = None  # rebuilt for the device
        self.asr.load()

    def close(self) -> None:
        self.asr.close()

    def models(self) -> list[ModelRef]:
        return [self.asr.model_ref]

    def _decoding_dict(self) -> dict[str, Any]:
        d = self.asr.decoding_dict()
        if self.protocol:
            d["protocol"] = self.protocol
        return d

    def _decoding_json(self) -> str:
        return json.dumps(self._decoding_dict(), sort_keys=True)

    def settings(self) -> dict[str, Any]:
        """Resolves the model (and converts a CTranslate2 file once) to report its sha256."""
        ref = self.asr.model_ref
        return {
            "asr": ref.name,
            "asr_sha256": ref.sha256,
            "normalizer": self.normalizer.name,
            "normalizer_version": self.normalizer.version,
            "asr_backend": self.asr.backend.name,
            "decoding": self._decoding_dict(),
            "window_seconds": self.window_seconds,
            "loop": {"max_n": LOOP_MAX_N, "min_extra": LOOP_MIN_EXTRA},
        }

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]:
        from halle_bench.audio import resample

        outputs: list[ScoreOutput | None] = [None] * len(items)
        todo: list[int] = []
        audios = []
        for k, it in enumerate(items):
            if not it.text or not it.text.strip():
                outputs[k] = ScoreOutput(error="empty reference text: WER needs the target text")
                continue
            audios.append(resample(np.asarray(it.audio, dtype=np.float32).reshape(-1), it.sample_rate, 16000))
            todo.append(k)
        transcripts = self.asr.transcribe(audios) if audios else []
        ref = self.asr.model_ref
        common = {"asr_model": ref.name, "asr_backend": self.asr.backend.name, "normalizer": self.normalizer.id,
                  "decoding": self._decoding_json()}
        for k, tr in zip(todo, transcripts):
            it = items[k]
            if tr.error:
                outputs[k] = ScoreOutput(error=f"ASR: {tr.error}")
                continue
            if it.duration_ref:
                duration = float(it.duration_ref)
            elif it.reference is not None and len(it.reference):
                duration = len(it.reference) / it.sample_rate
            else:
                duration = tr.audio_seconds
            try:
                values = text_scores(it.text or "", tr.text, self.normalizer, duration, self.window_seconds)
            except ValueError as e:
                outputs[k] = ScoreOutput(error=str(e))
                continue
            values["asr_windows"] = len(tr.windows)
            values["asr_fallbacks"] = sum(w.temperature not in (None, 0.0) for w in tr.windows)  # windows re-decoded
            values["asr_cuts"] = tr.cuts
            values["asr_cut_db"] = tr.cut_db  # loudest cut vs the clip's RMS, dB (None: not cut)
            values["asr_overlaps"] = tr.overlaps  # cuts inside speech, decoded with overlap
            values["asr_merge_fallbacks"] = tr.merge_fallbacks
            values.update(common)
            outputs[k] = ScoreOutput(values=values)
        return [o if o is not None else ScoreOutput(error="not scored") for o in outputs]


# ----------------------------------------------------------------------------- metric declarations
# What the leaderboard, report, plots and gate make of this scorer's columns (metric_decl.py).

from halle_bench.metric_decl import COUNT, HEADLINE, Bound, Metric  # noqa: E402
from halle_bench.metric_registry import register_metric  # noqa: E402

_ERRORS = ("subs", "dels", "ins", "n_ref_words")
_FAMILY = dict(scorer="wer", failures=COUNT, count_column="n_wer", model_column="asr_model", unit="%",
               scale=100.0, digits=1, why_missing="no `wer` scorer in the candidate run")
_BREAKDOWN = ("sub_rate", "del_rate", "ins_rate")
WER_METRICS = (
    # A WER that doubles and gains 5 points in any bucket fails without a significance test.
    Metric("wer", _ERRORS, kind="ratio", direction="lower", role=HEADLINE, ci="ratio", units_column="n_ref_words",
           provenance=("asr_backend", "normalizer"), claims=("hits", "char_errors", "n_ref_chars", "ref_norm",
                                                             "hyp_norm", "hyp_raw", "decoding"),
           bound=Bound(abs=0.05, factor=2.0), breakdown=_BREAKDOWN, plot="line",
           positional=("pos_errors", "pos_words"), label="WER (%)", short="WER %", **_FAMILY),
    Metric("wer_ok", _ERRORS, kind="ratio", direction="lower", ok_only=True, breakdown=_BREAKDOWN,
           bound=Bound(abs=0.05, factor=2.0), label="WER over successes (%)", short="WER ok %",
           **{**_FAMILY, "count_column": "n_wer_ok"}),
    Metric("wer_macro", ("wer",), direction="lower", breakdown=_BREAKDOWN, bound=Bound(abs=0.05, factor=2.0),
           label="mean per-utterance WER (%)", short="WER macro %", **_FAMILY),
    Metric("wer_median", ("wer",), kind="quantile", direction="lower", quantile=0.5, tolerance="info", show=False,
           label="median WER (%)", **_FAMILY),
    Metric("wer_p95", ("wer",), kind="quantile", direction="lower", quantile=0.95, tolerance="info", show=False,
           label="p95 WER (%)", **_FAMILY),
    Metric("wer_over_50", ("wer",), kind="rate", threshold=0.5, direction="lower", tolerance="info", show=False,
           label="share with WER > 50%", **_FAMILY),
    Metric("cer", ("char_errors", "n_ref_chars"), kind="ratio", direction="lower", show=False,
           bound=Bound(abs=0.05, factor=2.0), label="CER (%)", short="CER %", **_FAMILY),
    Metric("sub_rate", ("subs", "n_ref_words"), kind="ratio", direction="lower", show=False,
           label="substitutions (%)", short="sub", **_FAMILY),
    Metric("del_rate", ("dels", "n_ref_words"), kind="ratio", direction="lower", show=False,
           label="deletions (%)", short="del", **_FAMILY),
    Metric("ins_rate", ("ins", "n_ref_words"), kind="ratio", direction="lower", show=False,
           label="insertions (%)", short="ins", **_FAMILY),
    Metric("loop_rate", ("loop",), kind="rate", direction="lower", scorer="wer", count_column="n_wer_ok",
           claims=("loop_max_repeat",), label="share of utterances with a loop", short="loops"),
    Metric("asr_cuts", ("asr_cuts",), scorer="wer", digits=2, show=False, label="ASR window cuts"),
    Metric("asr_cut_db", ("asr_cut_db",), scorer="wer", digits=1, show=False, label="loudest ASR cut (dB re RMS)"),
)
for _m in WER_METRICS:
    register_metric(_m)
