"""Synthetic but realistic run directories for the report / plots / HTML / check tests.

`make_run(out, ...)` writes what the runner writes (architecture.md, "Run directory"):
config.toml, env.json, generation.jsonl, scores.jsonl (with the long-form lists
`pos_errors` / `pos_words`), utterances.csv, leaderboard.csv and tiny wavs under
audio/<system>/. The numbers are simulated, not invented: every utterance gets a
reference text, a hypothesis made by applying random substitutions / deletions /
insertions word by word, and WER, rates, positional counts and the leaderboard are
all computed from those edits, so they agree with each other the way real ones do.

The utterance set (ids, durations, texts) is fixed; `seed` only changes the noise, so
two runs with different seeds are paired, like two runs of one checkpoint with
different sampling seeds. `FakeSystem.drop_tail` simulates a real degradation: the
system drops the last part of each text in the long buckets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from halle_bench.audio import save_audio

BUCKETS = ((3, 10), (10, 30), (30, 60), (60, 90))
WORDS_PER_SECOND = 2.6
WINDOW_SECONDS = 30.0
VOCAB = ("the", "minutes", "of", "meeting", "we", "agreed", "budget", "next", "quarter", "speech",
         "model", "long", "form", "token", "rate", "hierarchical", "neural", "codec", "language", "review")


@dataclass(frozen=True)
class FakeSystem:
    name: str
    kind: str = "command"
    sub_p: float = 0.04
    del_p: float = 0.02
    ins_p: float = 0.01
    drift_per_window: float = 0.0  # extra error probability per 30 s of position (long-form drift)
    drop_tail: float = 0.0  # fraction of words dropped at the end of each utterance ...
    drop_from: float = 30.0  # ... in buckets whose lower edge is >= this
    sim: float = 0.55
    quality: float = 3.2
    rtf: float = 0.5
    fail_ids: tuple[str, ...] = ()
    extra_sub: float = 0.0  # extra substitution probability ...
    extra_sub_buckets: tuple[str, ...] = ()  # ... in these buckets only (a small, local regression)
    voice_drift: float = 0.0  # similarity lost where the voice has drifted (past the first 10 s) to another speaker


DEFAULT_SYSTEMS = (
    FakeSystem("gt", kind="ground-truth", sub_p=0.02, del_p=0.01, ins_p=0.005, sim=0.80, quality=3.6, rtf=0.0),
    FakeSystem("valle", kind="valle", sub_p=0.05, del_p=0.03, ins_p=0.02, drift_per_window=0.06,
               sim=0.50, quality=3.0, rtf=0.9, fail_ids=("u60-90-03",)),
    FakeSystem("halle", kind="halle", sub_p=0.04, del_p=0.02, ins_p=0.01, drift_per_window=0.01,
               sim=0.55, quality=3.2, rtf=0.3, fail_ids=("u3-10-01",)),
)


def degraded(systems=DEFAULT_SYSTEMS, name: str = "halle", drop_tail: float = 1 / 3):
    """The systems with `name` dropping the last `drop_tail` of each long text."""
    return tuple(replace(s, drop_tail=drop_tail) if s.name == name else s for s in systems)


def utterance_set(n_per_bucket: int = 8) -> list[dict]:
    """Fixed utterances (independent of the run seed): id, bucket, duration, text."""
    rng = np.random.default_rng(1234)
    out = []
    for lo, hi in BUCKETS:
        for k in range(n_per_bucket):
            dur = float(rng.uniform(lo + 0.5, hi - 0.5))
            n_words = max(3, int(round(dur * WORDS_PER_SECOND)))
            text = " ".join(rng.choice(VOCAB, size=n_words))
            out.append({"id": f"u{lo}-{hi}-{k:02d}", "bucket": f"{lo}-{hi}", "lo": lo, "duration": round(dur, 3),
                        "text": text})
    return out


def _rng(seed: int, *parts: str) -> np.random.Generator:
    h = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def simulate(sys: FakeSystem, utt: dict, seed: int) -> dict:
    """One utterance's edits and scores."""
    rng = _rng(seed, sys.name, utt["id"])
    ref = utt["text"].split()
    n = len(ref)
    dur = utt["duration"]
    keep = n
    if sys.drop_tail and utt["lo"] >= sys.drop_from:
        keep = int(round(n * (1 - sys.drop_tail)))
    n_win = int(np.ceil(dur / WINDOW_SECONDS))
    pos_errors, pos_words = [0] * n_win, [0] * n_win
    hyp: list[str] = []
    subs = dels = ins = 0
    sub_p = sys.sub_p + (sys.extra_sub if utt["bucket"] in sys.extra_sub_buckets else 0.0)
    for i, w in enumerate(ref):
        t = dur * i / n
        win = min(int(t // WINDOW_SECONDS), n_win - 1)
        pos_words[win] += 1
        p_extra = sys.drift_per_window * (t / WINDOW_SECONDS)
        u = rng.random()
        if i >= keep or u < sys.del_p + p_extra / 2:
            dels += 1
            pos_errors[win] += 1
        elif u < sys.del_p + sub_p + p_extra:
            subs += 1
            pos_errors[win] += 1
            hyp.append(VOCAB[(VOCAB.index(w) + 1) % len(VOCAB)])
        else:
            hyp.append(w)
        if i < keep and rng.random() < sys.ins_p:
            ins += 1
            pos_errors[win] += 1
            hyp.append("um")
    errors = subs + dels + ins
    audio_seconds = dur * (keep / n) * float(np.exp(rng.normal(0, 0.05)))
    wall = audio_seconds * sys.rtf * float(np.exp(rng.normal(0, 0.1)))
    return {
        "hits": n - subs - dels, "subs": subs, "dels": dels, "ins": ins, "n_ref_words": n,
        "wer": errors / n, "char_errors": int(round(errors * 4.7)), "n_ref_chars": len(utt["text"]),
        "ref_norm": utt["text"], "hyp_norm": " ".join(hyp),
        "pos_errors": pos_errors, "pos_words": pos_words,
        "pos_sim": [float(np.clip(sys.sim - sys.drift_per_window * k + rng.normal(0, 0.02), -1, 1))
                    for k in range(n_win)],
        "sim": float(np.clip(sys.sim - sys.voice_drift * max(0.0, dur - 10.0) / dur + rng.normal(0, 0.05), -1, 1)),
        "quality": float(np.clip(sys.quality + rng.normal(0, 0.25), 1, 5)),
        "loop": bool(rng.random() < 0.02 + sys.drift_per_window),
        "audio_seconds": audio_seconds, "wall_seconds": wall,
        "rtf": wall / audio_seconds if audio_seconds else float("nan"),
    }


def leaderboard(udf: pd.DataFrame, systems, seed: int, n_boot: int) -> pd.DataFrame:
    """The leaderboard the aggregator would write for these per-utterance rows."""
    from halle_bench.leaderboard import leaderboard_rows

    rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
            for r in udf.to_dict(orient="records")]
    return pd.DataFrame(leaderboard_rows(rows, [(s.name, s.kind) for s in systems], n_boot, seed))


def positional(udf: pd.DataFrame, lists: dict) -> pd.DataFrame:
    from halle_bench.leaderboard import positional_columns, positional_rows

    return pd.DataFrame(positional_rows(udf.to_dict(orient="records"), lists), columns=positional_columns())


def _tone(seconds: float, f0: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = np.minimum(1.0, np.minimum(t, t[-1] - t) * 20)  # 50 ms fades, no clicks
    return (0.3 * env * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * t))).astype(np.float32)


CONFIG_TOML = """\
[dataset]
manifest = "meta.lst"
buckets = [3, 10, 30, 60, 90]
prompt = "given"
prompt_seconds = 3.0

{systems}
[metrics]
wer = {{ asr = "whisper-base", normalizer = "whisper-en", beam_size = 5, temperature = 0.0 }}
sim = {{ model = "resemblyzer" }}
quality = {{ model = "dnsmos" }}

[run]
seed = {seed}
device = "cpu"
max_failed_fraction = 0.1
n_boot = {n_boot}
"""


def make_run(out: str | Path, systems=DEFAULT_SYSTEMS, seed: int = 0, n_per_bucket: int = 8,
             n_boot: int = 200, audio: bool = True, audio_cap: float = 1.0) -> Path:
    """Write a complete run directory under `out` and return it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    utts = utterance_set(n_per_bucket)
    urows, gen, scores = [], [], []
    lists: dict = {}
    for sys in systems:
        for u in utts:
            base = {"system": sys.name, "id": u["id"], "bucket": u["bucket"], "duration": u["duration"],
                    "speaker": f"spk{utts.index(u) % 4}", "text": u["text"]}
            if u["id"] in sys.fail_ids:
                err = "command exited with status 1: out of memory"
                gen.append({"system": sys.name, "id": u["id"], "status": "failed", "error": err})
                n_words, n_chars = len(u["text"].split()), len(u["text"])  # all-deleted, as aggregate writes it
                urows.append({**base, "status": "failed", "error": err, "wer": 1.0, "hits": 0, "subs": 0,
                              "dels": n_words, "ins": 0, "n_ref_words": n_words, "char_errors": n_chars,
                              "n_ref_chars": n_chars, "ref_norm": u["text"], "hyp_norm": ""})
                continue
            r = simulate(sys, u, seed)
            gen.append({"system": sys.name, "id": u["id"], "status": "ok", "error": None,
                        "audio_seconds": r["audio_seconds"], "wall_seconds": r["wall_seconds"], "rtf": r["rtf"]})
            wer_vals = {k: r[k] for k in ("wer", "hits", "subs", "dels", "ins", "n_ref_words", "char_errors",
                                          "n_ref_chars", "ref_norm", "hyp_norm", "pos_errors", "pos_words")}
            wer_vals.update(asr_model="whisper-base", normalizer="whisper-en", loop=r["loop"])
            for scorer, vals in (("wer", wer_vals), ("sim", {"sim": r["sim"], "sim_model": "resemblyzer", "pos_sim": r["pos_sim"]}),
                                 ("quality", {"quality": r["quality"], "quality_model": "dnsmos"})):
                scores.append({"system": sys.name, "id": u["id"], "scorer": scorer, "version": "1",
                               "key": f"{sys.name}:{u['id']}:{scorer}", "values": vals, "error": None})
            urows.append({**base, "status": "ok", "error": None, "asr_model": "whisper-base",
                          "normalizer": "whisper-en", "sim_model": "resemblyzer", "quality_model": "dnsmos",
                          **{k: v for k, v in r.items() if k not in ("pos_errors", "pos_words", "pos_sim")}})
            lists[(sys.name, u["id"])] = {"pos_errors": r["pos_errors"], "pos_words": r["pos_words"],
                                          "pos_sim": r["pos_sim"]}
            if audio:
                f0 = 140.0 + 40 * systems.index(sys) + 3 * utts.index(u) % 50
                save_audio(out / "audio" / sys.name / f"{u['id']}.wav", _tone(min(u["duration"], audio_cap), f0), 16000)
    udf = pd.DataFrame(urows)
    udf.to_csv(out / "utterances.csv", index=False, float_format="%.6g")
    leaderboard(udf, systems, seed, n_boot).to_csv(out / "leaderboard.csv", index=False, float_format="%.6g")
    positional(udf, lists).to_csv(out / "positional.csv", index=False, float_format="%.6g")
    with open(out / "generation.jsonl", "w") as f:
        f.writelines(json.dumps(g) + "\n" for g in gen)
    with open(out / "scores.jsonl", "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in scores)
    sys_toml = "".join(f'[[systems]]\nname = "{s.name}"\nkind = "{s.kind}"\n\n' for s in systems)
    (out / "config.toml").write_text(CONFIG_TOML.format(systems=sys_toml, seed=seed, n_boot=n_boot))
    env = {
        "halle_bench": "0.1.0", "git_revision": "0123456789abcdef0123456789abcdef01234567",
        "versions": {"python": "3.11.2", "torch": "2.13.0", "openai-whisper": "20240930"},
        "platform": "Linux-x86_64", "cpu_count": 2, "device": "cpu", "seed": seed,
        "models": [
            {"scorer": "wer", "name": "whisper-base", "sha256": "ed3a0b6b1c0edf879ad9b11b1af5a0e6ab5db9205f891f668f8b0e6c6326e34e", "path": "~/.cache/whisper/base.pt"},
            {"scorer": "sim", "name": "resemblyzer", "sha256": "a1b2" * 16, "path": "resemblyzer/pretrained.pt"},
            {"scorer": "quality", "name": "dnsmos", "sha256": "c3d4" * 16, "path": "speechmos/sig_bak_ovr.onnx"},
        ],
        "scorers": {"wer": {"name": "wer", "version": "1"}, "sim": {"name": "sim", "version": "1"},
                    "quality": {"name": "quality", "version": "1"}},
        "systems": {s.name: f"key-{s.name}" for s in systems},
        "manifest": "meta.lst", "n_utterances": len(utts),
    }
    (out / "env.json").write_text(json.dumps(env, indent=2))
    return out
