"""The "longform" scorer: pause statistics and truncation / overrun from the audio.

HALL-E's failure modes on minutes-long speech are audible in the signal itself:
a model that stops early (truncation), babbles on (overrun), or pauses unlike a
human speaker. This module measures them; loops and WER by position come from
the transcript (the `transcript` scorer).

**Energy rule for pauses** (`pause_segments`): the signal is cut into
non-overlapping frames of `frame_seconds` (10 ms); a frame is silent when its RMS
is below `threshold_db` (-40 dB) relative to the loudest frame's RMS (a frame
peak, not a sample peak, so one click does not move the threshold much). A pause
is a run of silent frames lasting at least `min_pause` (0.1 s) that lies *between*
speech: silence before the first and after the last non-silent frame is excluded,
as are shorter gaps (stop closures, not pauses). Pause lengths are whole numbers
of frames. An all-silent clip has no speech and no pauses.

**Speaking rate** (version 3): words of the target text per second of speech (the
active span minus the pauses), `speaking_rate`, and the same for the reference audio of
the utterance, `ref_speaking_rate`; `ref_n_pauses` counts the reference's pauses. The
leaderboard declarations (end of this module) gate them toward the reference audio's own
value, and `pause_w1` compares the pause lengths with the reference's.

**Duration ratio**, in order of what is available:

1. reference audio: active span of the output / active span of the reference
   (active span = first to last non-silent frame, so differing lead-in and
   trailing silences do not count) — `duration_basis = "reference"`;
2. a reference duration without audio (`duration_ref`): whole output length /
   that duration — `"reference-duration"`;
3. prompt audio + prompt text + target text: the prompt's speaking rate
   (words per second of its active span) times the target's word count gives the
   expected seconds; ratio = output active span / expected — `"prompt-rate"`;
4. otherwise no ratio (`duration_ratio`, `truncated`, `overrun` are None).

`truncated` is ratio < `truncated_below` (0.6), `overrun` ratio > `overrun_above`
(1.67, about 1/0.6); both configurable.

**Same span** (`head` prompt policy): the prompt is the reference's own first seconds
and the runner hands the reference (and the ground-truth row's audio) over with that
part removed, while a system speaks the whole text. Durations must compare like with
like, so when the item says which span was cut (`prompt_cut`) the prompt audio is put
back in its place: the reference, and the ground-truth row's audio, cover the whole
text again (an output equal to the reference gets ratio 1.0, not 2.6 and `overrun`),
and the ground-truth row's pauses are those of the whole reference. Without the prompt
audio the reference cannot be restored: a system's ratio then uses the reference
duration (basis 2), and the ground-truth row compares its cut audio with the cut
reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from halle_bench.audio import SCORING_SR, resample
from halle_bench.errors import ConfigError

from .base import NEEDS_PROMPT, NEEDS_REFERENCE, NEEDS_TEXT, BaseScorer, ScoreItem, ScoreOutput, register_scorer

FRAME_SECONDS = 0.01


@dataclass(frozen=True)
class PauseAnalysis:
    pauses: list[float]  # internal pause lengths, seconds, in order
    speech_seconds: float  # active span minus the pauses
    active_start: float  # first non-silent frame (s); 0 when there is none
    active_end: float  # end of the last non-silent frame (s)

    @property
    def active_seconds(self) -> float:
        return max(0.0, self.active_end - self.active_start)


def frame_levels_db(audio: np.ndarray, sr: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """Per-frame RMS in dB relative to the loudest frame (-inf for digital silence)."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    flen = max(1, int(round(frame_seconds * sr)))
    n = x.size // flen  # a partial last frame is dropped (< 10 ms)
    if n == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(x[: n * flen].reshape(n, flen) ** 2, axis=1))
    peak = rms.max()
    if peak <= 0:
        return np.full(n, -np.inf)
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms / peak)


def analyse_pauses(
    audio: np.ndarray, sr: int, threshold_db: float = -40.0, min_pause: float = 0.1, frame_seconds: float = FRAME_SECONDS
) -> PauseAnalysis:
    """Pauses, speech seconds and active span of a clip (see the module docstring)."""
    levels = frame_levels_db(audio, sr, frame_seconds)
    flen = max(1, int(round(frame_seconds * sr)))
    fsec = flen / sr
    loud = np.flatnonzero(levels >= threshold_db)
    if loud.size == 0:
        return PauseAnalysis([], 0.0, 0.0, 0.0)
    first, last = int(loud[0]), int(loud[-1])
    min_frames = int(np.ceil(min_pause / fsec - 1e-9))
    pauses: list[float] = []
    gaps = np.diff(loud) - 1  # silent frames between consecutive loud frames
    for g in gaps[gaps >= max(1, min_frames)]:
        pauses.append(round(float(g) * fsec, 6))
    span = (last - first + 1) * fsec
    return PauseAnalysis(pauses, round(span - sum(pauses), 6), first * fsec, (last + 1) * fsec)


def pause_segments(
    audio: np.ndarray, sr: int, threshold_db: float = -40.0, min_pause: float = 0.1, frame_seconds: float = FRAME_SECONDS
) -> list[float]:
    """Lengths in seconds of the internal pauses of a clip (edges excluded)."""
    return analyse_pauses(audio, sr, threshold_db, min_pause, frame_seconds).pauses


def wasserstein_1d(a: Sequence[float], b: Sequence[float]) -> float:
    """First Wasserstein distance between two empirical 1-D distributions.

    W1 = integral of |F_a(t) - F_b(t)| dt, computed exactly on the merged sorted
    support (equals `scipy.stats.wasserstein_distance(a, b)`).
    """
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError("wasserstein_1d needs two non-empty samples")
    allv = np.sort(np.concatenate([a, b]))
    widths = np.diff(allv)
    cdf_a = np.searchsorted(a, allv[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, allv[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def pause_wasserstein(system_pauses: Sequence[float], gt_pauses: Sequence[float]) -> float:
    """W1 between a system's and the ground truth's pause lengths (pooled over a bucket).

    An empty side stands for "never pauses" and is treated as one zero-length
    pause, so the distance is the other side's mean pause (a system that never
    pauses is penalised by how much the reference pauses); both empty gives 0.
    """
    s = list(system_pauses) or [0.0]
    g = list(gt_pauses) or [0.0]
    return wasserstein_1d(s, g)


def restore_cut(audio: np.ndarray, prompt: np.ndarray, start_s: float, sr: int = SCORING_SR) -> np.ndarray:
    """`audio` with `prompt` put back at `start_s` (the span the runner cut out)."""
    a = min(len(audio), max(0, int(round(start_s * sr))))
    return np.concatenate([audio[:a], np.asarray(prompt, dtype=np.float32).reshape(-1), audio[a:]])


def _rate(text: str | None, a: PauseAnalysis) -> float | None:
    """Words of the target text per second of speech (active span minus pauses); None
    without a text or without speech."""
    words = len(text.split()) if text else 0
    return words / a.speech_seconds if words and a.speech_seconds > 0 else None


@register_scorer("longform")
class LongformScorer(BaseScorer):
    name: ClassVar[str] = "longform"
    # 2: head policy compares over the same span (prompt put back)
    # 3: speaking_rate / ref_speaking_rate and ref_n_pauses (gated toward the reference audio's own)
    version: ClassVar[str] = "3"
    # All optional: used when the runner has them (see the duration ratio order).
    uses: ClassVar[frozenset[str]] = frozenset({NEEDS_REFERENCE, NEEDS_PROMPT, NEEDS_TEXT})

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        c = self.config
        self.threshold_db = float(c.get("threshold_db", -40.0))
        self.min_pause = float(c.get("min_pause", 0.1))
        self.truncated_below = float(c.get("truncated_below", 0.6))
        self.overrun_above = float(c.get("overrun_above", 1.67))
        self.batch_size = int(c.get("batch_size", 32))
        if self.threshold_db >= 0 or self.min_pause <= 0 or not 0 < self.truncated_below < 1 < self.overrun_above:
            raise ConfigError(
                "metrics.longform: need threshold_db < 0, min_pause > 0 and 0 < truncated_below < 1 < overrun_above"
            )

    def settings(self) -> dict[str, Any]:
        return {
            "threshold_db": self.threshold_db,
            "min_pause": self.min_pause,
            "frame_seconds": FRAME_SECONDS,
            "truncated_below": self.truncated_below,
            "overrun_above": self.overrun_above,
        }

    def _analyse(self, x: np.ndarray) -> PauseAnalysis:
        return analyse_pauses(x, SCORING_SR, self.threshold_db, self.min_pause)

    def score(self, items: list[ScoreItem]) -> list[ScoreOutput]:
        return [self._score_one(it) for it in items]

    def _score_one(self, item: ScoreItem) -> ScoreOutput:
        x = np.asarray(item.audio, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return ScoreOutput(error="longform: empty audio")
        if not np.all(np.isfinite(x)):
            return ScoreOutput(error="longform: audio contains NaN/inf samples")
        if item.sample_rate != SCORING_SR:
            x = resample(x, item.sample_rate, SCORING_SR)
        reference = item.reference
        if item.prompt_cut is not None:  # head policy: compare over the whole text (docstring)
            if item.prompt is not None:
                start = item.prompt_cut[0]
                if reference is not None:
                    reference = restore_cut(np.asarray(reference, dtype=np.float32), item.prompt, start)
                if item.is_ground_truth:
                    x = restore_cut(x, item.prompt, start)
            elif not item.is_ground_truth:
                reference = None
        gen = self._analyse(x)
        v: dict[str, Any] = {
            "pauses": gen.pauses,
            "n_pauses": len(gen.pauses),
            "speaking_rate": _rate(item.text, gen),
            "pause_mean": float(np.mean(gen.pauses)) if gen.pauses else None,
            "speech_seconds": gen.speech_seconds,
            "audio_seconds": x.size / SCORING_SR,
        }
        ratio, basis = None, None
        if reference is not None and np.asarray(reference).size:
            ref = self._analyse(np.asarray(reference, dtype=np.float32))
            v["ref_pauses"] = ref.pauses
            v["ref_n_pauses"] = len(ref.pauses)
            v["ref_speaking_rate"] = _rate(item.text, ref)
            if ref.active_seconds > 0:
                ratio, basis = gen.active_seconds / ref.active_seconds, "reference"
        if ratio is None and item.duration_ref:
            ratio, basis = (x.size / SCORING_SR) / float(item.duration_ref), "reference-duration"
        if ratio is None and item.prompt is not None and item.prompt_text and item.text:
            pr = self._analyse(np.asarray(item.prompt, dtype=np.float32))
            words = len(item.prompt_text.split())
            if pr.active_seconds > 0 and words > 0:
                expected = len(item.text.split()) / (words / pr.active_seconds)
                ratio, basis = gen.active_seconds / expected, "prompt-rate"
        v["duration_ratio"] = ratio
        v["duration_basis"] = basis
        v["truncated"] = None if ratio is None else bool(ratio < self.truncated_below)
        v["overrun"] = None if ratio is None else bool(ratio > self.overrun_above)
        return ScoreOutput(values=v)


# ----------------------------------------------------------------------------- metric declarations

from halle_bench.metric_decl import Metric  # noqa: E402
from halle_bench.metric_registry import register_metric  # noqa: E402


def cell_pause_w1(rows, lists, system_rows) -> tuple[float, int, str | None]:
    """`pause_w1` of a leaderboard cell: W1 between the pooled pause lengths of the
    cell's generated audio and those of the manifest's reference audio of the same
    utterances (`ref_pauses`, measured by this scorer on the reference), never the
    ground-truth system's rows, so a run of one system (`--systems mymodel`) has it.
    An utterance without detected pauses adds none: a cell with none at all is
    "never pauses", one zero-length pause (`pause_wasserstein`), a value, not missing."""
    ok = [r for r in rows if r.get("status") == "ok"]
    mine: list[float] = []
    ref: list[float] = []
    n = 0
    for r in ok:
        extra = lists.get((r["system"], r["id"]), {})
        if "pauses" in extra and "ref_pauses" in extra:
            mine += list(extra["pauses"])
            ref += list(extra["ref_pauses"])
            n += 1
    if n:
        return pause_wasserstein(mine, ref), n, None
    if not any("pauses" in lists.get((r["system"], r["id"]), {}) for r in ok):
        return float("nan"), 0, None  # no longform scorer here: nothing to say
    return float("nan"), 0, "not computed: no reference audio for these utterances (pause_w1 compares with it)"


LONGFORM_METRICS = (
    Metric("pause_w1", kind="custom", compute=cell_pause_w1, direction="lower", scorer="longform", tolerance="0.1",
           claims=("pauses", "ref_pauses"), unit="s", label="pause lengths: W1 to the reference audio (s)",
           short="pause W1 s", why_missing="no `longform` scorer or no reference audio"),
    # Closer to 1 is better: a target metric, gated through duration_ratio_dev = mean |ratio - 1|.
    Metric("duration_ratio", ("duration_ratio",), direction="target", target=1.0, scorer="longform", digits=2,
           claims=("duration_basis", "audio_seconds"), label="generated / reference duration",
           short="dur ratio", why_missing="no `longform` scorer, or no reference to compare with"),
    Metric("truncated", ("truncated",), kind="rate", direction="lower", scorer="longform", show=False,
           label="share truncated"),
    Metric("overrun", ("overrun",), kind="rate", direction="lower", scorer="longform", show=False,
           label="share overrun"),
    # Toward the reference audio's own value of the same utterance: "no pause detected" is 0 pauses, a value.
    Metric("speaking_rate", ("speaking_rate",), direction="target", target="ref_speaking_rate", scorer="longform",
           unit="w/s", digits=2, claims=("ref_speaking_rate",), label="speaking rate (words / speech second)",
           short="rate w/s", why_missing="no `longform` scorer, no text or no speech"),
    Metric("n_pauses", ("n_pauses",), direction="target", target="ref_n_pauses", scorer="longform", digits=1,
           show=False, claims=("ref_n_pauses",), label="pauses per utterance",
           why_missing="no `longform` scorer or no reference audio"),
    Metric("pause_mean", ("pause_mean",), scorer="longform", digits=2, unit="s", show=False,
           label="mean pause (s)"),
    Metric("speech_seconds", ("speech_seconds",), scorer="longform", digits=1, unit="s", show=False,
           label="speech seconds per utterance"),
)
for _m in LONGFORM_METRICS:
    register_metric(_m)
