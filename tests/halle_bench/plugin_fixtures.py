"""Test-only system and scorer, loaded through `[run] plugins` (also in subprocesses).

`tone` system: a deterministic sine whose length follows the text (0.06 s per
character) and whose pitch follows the seed. `HALLE_TEST_KILL_GEN=N` SIGKILLs the
process when the N-th item is synthesised; `HALLE_TEST_KILL_SCORE=N` likewise in
the `toy` scorer. They exist to test resume after a real SIGKILL.

`toy` scorer: "transcribes" by counting energy (deterministic) and returns WER-shaped
values: the reference word count from the text, deletions when the audio is shorter
than expected. It is maths on the real audio, so a changed audio changes the score.
"""

from __future__ import annotations

import os
import signal

import numpy as np

from halle_bench.metrics.base import BaseScorer, ScoreOutput, register_scorer
from halle_bench.systems.base import BaseSystem, SynthesisResult, register_system

_count = {"gen": 0, "score": 0}


def _maybe_kill(kind: str, env: str) -> None:
    _count[kind] += 1
    n = os.environ.get(env)
    if n and _count[kind] >= int(n):
        os.kill(os.getpid(), signal.SIGKILL)


@register_system("tone", "test: a sine wave as long as the text")
class ToneSystem(BaseSystem):
    kind = "tone"

    def __init__(self, name, config, base_dir):
        super().__init__(name, config, base_dir)
        self.batch_size = int(config.get("batch_size", 1))
        self.silent = bool(config.get("silent", False))
        self.crash_on = str(config.get("crash_on", ""))
        self.keep = float(config.get("keep", 1.0))  # < 1: drop the end of each utterance
        # Timing tests: report per-item seconds in `info` (0.01 s per character), and
        # pin the system to its own device (as a model on cuda:1 would).
        self.report_seconds = bool(config.get("report_seconds", False))
        self.pin_device = config.get("pin_device")

    def load(self, device):
        self.device = self.pin_device or device

    def synthesize(self, requests):
        out = []
        for r in requests:
            _maybe_kill("gen", "HALLE_TEST_KILL_GEN")
            if self.crash_on and self.crash_on in r.text:
                raise RuntimeError("tone system crashed")
            sr = 16000
            n = int(0.06 * len(r.text) * sr * self.keep)
            t = np.arange(n) / sr
            f = 150 + (r.seed % 100)
            x = 0.0 if self.silent else 0.3
            res = SynthesisResult(r.utt_id, (x * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)
            if self.report_seconds:
                res.info = {"wall_seconds": 0.01 * len(r.text)}
            out.append(res)
        return out


@register_scorer("toy")
class ToyScorer(BaseScorer):
    name = "toy"
    version = "1"
    needs = frozenset({"text"})
    higher_is_better = {"wer": False}
    batch_size = 3

    def score(self, items):
        outs = []
        for it in items:
            _maybe_kill("score", "HALLE_TEST_KILL_SCORE")
            words = it.text.split()
            expected = 0.06 * len(it.text)
            got = len(it.audio) / it.sample_rate
            n = len(words)
            dels = int(round(max(0.0, 1 - got / expected) * n)) if expected else 0
            outs.append(ScoreOutput({"wer": dels / n, "hits": n - dels, "subs": 0, "dels": dels, "ins": 0,
                                     "n_ref_words": n, "energy": float(np.sqrt(np.mean(it.audio ** 2))),
                                     "pos_errors": [dels], "pos_words": [n]}))
        return outs


def loud(text, prompt_wav=None, prompt_text=None, seed=0):
    """`python` system for the clipping test: a sine whose second half peaks at 1.5."""
    sr = 16000
    t = np.arange(sr) / sr
    x = 0.5 * np.sin(2 * np.pi * 220 * t)
    x[sr // 2 :] *= 3.0
    return x.astype(np.float32), sr
