"""The "does it speak" check: its choice of texts and prompts, its time budget, WER and CER,
and its [speak] keys."""

import numpy as np
import pytest

from halle_bench.baselines.training.speak import SpeakCheck, pair_prompts
from halle_bench.protocols import ScoreOutput


def _item(uid: str, seconds: float, sr: int = 100):
    return uid, f"text of {uid}", np.zeros(int(seconds * sr), np.float32), sr


def test_shortest_texts_each_prompted_by_the_shortest_other_item():
    items = [_item("a", 30), _item("b", 4), _item("c", 12), _item("d", 3), _item("e", 50)]
    got = pair_prompts(items, 3)
    assert [g.id for g in got] == ["d", "b", "c"]  # the three shortest texts
    assert [g.prompt_text for g in got] == ["text of b", "text of d", "text of d"]  # never its own audio
    assert all(len(g.prompt_wav) <= 4 * 100 for g in got)
    assert len(pair_prompts(items, 10)) == 5


def test_needs_two_items():
    with pytest.raises(ValueError, match="at least 2"):
        pair_prompts([_item("a", 3)], 1)


class _Scorer:
    """Stands in for the WER scorer: hears every item perfectly except item "d" (one word wrong)."""

    normalizer = staticmethod(lambda t: t.lower().strip())

    def score(self, items):
        from halle_bench.metrics.wer import text_scores

        return [ScoreOutput(text_scores(it.text, it.text.replace("of", "off") if it.utt_id == "d" else it.text,
                                        self.normalizer, 1.0)) for it in items]


def _check(budget, n=5):
    items = pair_prompts([_item(u, s) for u, s in zip("abcde", (30, 4, 12, 3, 50))], n)
    now = [0.0]
    calls = []

    def synth(text, pw, psr, pt, seed):
        calls.append(text)
        now[0] += 50.0  # every synthesis takes 50 s
        return np.ones(1600, np.float32), 16000

    check = SpeakCheck(items, {"asr": "x", "budget_s": budget, "top_k": 1, "every": 3}, clock=lambda: now[0])
    check._scorer = _Scorer()
    assert check.scorer_config == {"asr": "x"} and check.budget_s == budget  # its own keys are split off
    return check(synth), calls


def test_time_budget_stops_the_check_and_cer_is_reported():
    row, calls = _check(120.0)
    assert len(calls) == 3 and row["speak_done"] == 3 and row["speak_items"] == 5  # started at 0, 50, 100 s
    assert row["speak_seconds"] == 150.0
    # d, b, c synthesised; d ("text of d") heard as "text off d": 1 of 9 words, 1 of 27 characters
    assert row["val_wer"] == pytest.approx(1 / 9) and row["val_cer"] == pytest.approx(1 / 27)
    row, calls = _check(1.0)
    assert len(calls) == 1 and row["speak_done"] == 1  # the first item always runs
    row, calls = _check(1e9)
    assert len(calls) == 5 and row["speak_done"] == 5


def test_a_failed_synthesis_counts_every_word_and_character_as_deleted():
    items = pair_prompts([_item("a", 3), _item("b", 4)], 2)

    def synth(text, *a):
        if text.endswith("a"):
            raise RuntimeError("no EOS")
        return np.ones(1600, np.float32), 16000

    check = SpeakCheck(items)
    check._scorer = _Scorer()
    row = check(synth)
    assert row["speak_failed"] == 1
    assert row["val_wer"] == pytest.approx(3 / 6) and row["val_cer"] == pytest.approx(9 / 18)
    assert check.errors == ["a: no EOS"]


def test_speak_keys_are_checked(tmp_path):
    from halle_bench.baselines.training import load_train_config
    from halle_bench.baselines.training.speak import sampling_options
    from halle_bench.errors import ConfigError

    base = ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\nval_items = 2\n[codec]\nkind = "tiny"\n'
            '[speak]\nitems = 2\n')
    p = tmp_path / "c.toml"
    p.write_text(base + 'budget_s = 30\ntop_k = 5\ntemperature = 0.7\nmax_len_ratio = 8\n')
    job = load_train_config(p)
    opts = sampling_options(job.speak, 16.0)
    assert (opts.top_k, opts.temperature, opts.max_len_ratio) == (5, 0.7, 8.0)
    assert sampling_options({}, 2.0).greedy and sampling_options(None, 2.0).max_len_ratio == 2.0
    for bad, line in (("budget_s = 0", 10), ("top_k = -1", 10), ("temperature = \"hot\"", 10), ("budgets = 3", 10)):
        p.write_text(base + bad + "\n")
        with pytest.raises(ConfigError) as e:
            load_train_config(p)
        assert e.value.line == line and str(p) in str(e.value), (bad, str(e.value))
