"""`halle-bench train <config>` with `model = "codec"`: build the shipped codecs from espeak-ng.

One config rebuilds everything the package ships under `baselines/checkpoints/`:

* `teacher/`  — the 48 Hz mel codec (`melcodec.MelCodec`), residual k-means fitted;
* `mreq/`     — an MReQ tokenizer folder (`MReQTokenizer.save`: `codec/` = the teacher,
                `mrvq.*`, `tokenizer.json`), the MRVQ trained by `MReQTrainer` on the teacher;
* `naive8/`   — (optional `[naive]`) the same front end fitted directly at 8 Hz (`stack = 6`)
                at about MReQ's bitrate: the paper's "codec retrained at 8 Hz" row.

Training speech: the texts of `[corpus] texts` (default: the bundled
`baselines/data/codec_sentences.txt`, written apart from the demo passage and the tests),
each spoken by two of the `voices` (rotating), by espeak-ng at 24 kHz. Re-running on the
same `out` reuses finished parts and resumes the MReQ training from its last checkpoint.

```toml
model = "codec"
out = "runs/codec"
[corpus]
texts = "builtin"            # or a text file, one sentence per line ("#" comments)
voices = [["en-us", 150, 50], ["en-gb", 160, 60]]   # espeak-ng voice, words/min, pitch
voices_per_text = 2
[teacher]                    # MelCodecConfig fields + fitting
n_q = 8
codebook_size = 1024
iters = 20
seed = 0
[naive]                      # optional
stack = 6
n_q = 21
codebook_size = 64
[mreq]                       # MRVQConfig fields + MReQTrainConfig fields
hidden = 128
steps = 3000
```
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from halle_bench.errors import ConfigError

from .melcodec import MelCodec, MelCodecConfig

DEFAULT_VOICES = (("en-us", 150, 50), ("en-gb", 160, 60), ("en-gb-x-rp", 140, 40), ("en-us+f3", 150, 70),
                  ("en-029", 155, 50), ("en-gb-x-gbclan", 145, 45))
_FIT_KEYS = {"iters", "seed", "max_frames"}
_MEL_KEYS = {f.name for f in fields(MelCodecConfig)}
_MRVQ_KEYS = {"rates", "latent_dim", "hidden", "preq_n_q", "quant_n_q", "postq_n_q", "codebook_size", "ema",
              "decay", "dead_fraction"}
_MREQ_TRAIN_KEYS = {"steps", "lr", "weight_decay", "batch_size", "segment_blocks", "grad_clip", "seed",
                    "ckpt_every", "log_every"}
_MREQ_LOSS_KEYS = {"w_nac", "w_fld", "w_hsr", "w_commit", "w_codebook"}
_TABLES = {"corpus": {"texts", "voices", "voices_per_text", "limit"}, "teacher": _MEL_KEYS | _FIT_KEYS,
           "naive": _MEL_KEYS | _FIT_KEYS, "mreq": _MRVQ_KEYS | _MREQ_TRAIN_KEYS | _MREQ_LOSS_KEYS | {"half"}}


# ------------------------------------------------------------------ config
def parse_codec_job(raw: dict[str, Any], err) -> dict[str, Any]:
    """Check the codec config's tables (raw TOML dict); `err(msg, key, after, header)` makes a
    ConfigError with the line. Returns {table: values} (the job's `model_config`)."""
    out: dict[str, Any] = {}
    for name, allowed in _TABLES.items():
        t = raw.get(name)
        if t is None:
            continue
        if not isinstance(t, dict):
            raise err(f"`{name}` must be a table ([{name}])", name, None, None)
        for k in t:
            if k not in allowed:
                raise err(f"[{name}]: unknown key {k!r} (expected one of {sorted(allowed)})", k, f"[{name}]", name)
        out[name] = dict(t)
    for name in ("teacher", "naive"):
        if name in out:
            mel = {k: v for k, v in out[name].items() if k in _MEL_KEYS}
            try:
                MelCodecConfig(**mel)
            except (TypeError, ValueError) as e:
                k0 = next(iter(mel), None)
                raise err(f"[{name}]: bad codec setting: {e}", k0, f"[{name}]", name) from None
    voices = out.get("corpus", {}).get("voices")
    if voices is not None:
        ok = isinstance(voices, list) and voices and all(
            isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and all(isinstance(x, int) for x in v[1:])
            for v in voices)
        if not ok:
            raise err("[corpus]: `voices` must be a list of [voice, words_per_minute, pitch]", "voices", "[corpus]", "corpus")
    return out


def corpus_texts(spec: dict[str, Any], base: Path) -> list[str]:
    src = spec.get("texts", "builtin")
    if src == "builtin":
        text = resources.files("halle_bench.baselines").joinpath("data/codec_sentences.txt").read_text(encoding="utf-8")
        where = "builtin codec_sentences.txt"
    else:
        p = Path(src) if Path(src).is_absolute() else base / src
        if not p.exists():
            raise ConfigError(f"[corpus] texts file not found: {p}")
        text, where = p.read_text(encoding="utf-8"), str(p)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ConfigError(f"[corpus]: no sentences in {where}")
    return lines[: spec["limit"]] if spec.get("limit") else lines


def speak_corpus(texts: list[str], voices, per_text: int, sr: int) -> list[np.ndarray]:
    """Each text in `per_text` voices (rotating through `voices`), at `sr`. Deterministic."""
    from halle_bench.espeak import espeak

    out = []
    for i, t in enumerate(texts):
        for j in range(per_text):
            v, speed, pitch = voices[(i + j * max(1, len(voices) // per_text)) % len(voices)]
            out.append(espeak(t, v, int(speed), int(pitch), sr=sr))
    return out


def _split(values: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in keys}


def fit_mel_codec(wavs: list[np.ndarray], sr: int, values: dict[str, Any]) -> MelCodec:
    cfg = MelCodecConfig(**_split(values, _MEL_KEYS))
    fit = _split(values, _FIT_KEYS)
    return MelCodec(cfg).fit(wavs, sr, seed=int(fit.get("seed", 0)), iters=int(fit.get("iters", 20)),
                             max_frames=fit.get("max_frames"))


def _load_or_fit(folder: Path, wavs, sr, values, log) -> MelCodec:
    from .codec_api import load_codec

    want = MelCodecConfig(**_split(values, _MEL_KEYS)).to_dict()
    stamp = folder / "fit.json"
    if (folder / "codec.json").exists() and stamp.exists() and json.loads(stamp.read_text()) == values:
        codec = load_codec(folder)
        if codec.cfg.to_dict() == want:
            log(f"reusing {folder}")
            return codec
    t0 = time.perf_counter()
    codec = fit_mel_codec(wavs, sr, values)
    codec.save(folder)
    stamp.write_text(json.dumps(values, indent=2, sort_keys=True))
    log(f"fitted {folder.name} ({codec.cfg.n_q} x {codec.cfg.codebook_size} at {codec.frame_rate:g} Hz) "
        f"in {time.perf_counter() - t0:.1f} s")
    return load_codec(folder)  # the saved (fp16-rounded) codebooks are the ones used from now on


def run_codec_training(out: Path, spec: dict[str, Any], base: Path, steps: int | None = None,
                       device: str = "cpu", log=print) -> Path:
    from .mreq import MReQLossConfig, MReQModel, MReQTrainConfig, MReQTrainer
    from .mreq_tokenizer import MReQTokenizer
    from .mrvq import MRVQ, MRVQConfig

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    corpus = spec.get("corpus", {})
    voices = [tuple(v) for v in corpus.get("voices", DEFAULT_VOICES)]
    texts = corpus_texts(corpus, base)
    teacher_values = {"n_q": 8, "codebook_size": 1024, **spec.get("teacher", {})}
    sr = MelCodecConfig(**_split(teacher_values, _MEL_KEYS)).sample_rate
    t0 = time.perf_counter()
    wavs = speak_corpus(texts, voices, int(corpus.get("voices_per_text", 2)), sr)
    log(f"corpus: {len(texts)} texts, {len(wavs)} clips, {sum(map(len, wavs)) / sr / 60:.1f} min "
        f"(espeak-ng, {time.perf_counter() - t0:.1f} s)")
    teacher = _load_or_fit(out / "teacher", wavs, sr, teacher_values, log)
    if "naive" in spec:
        _load_or_fit(out / "naive8", wavs, sr, {"name": "mel8hz-naive", **spec["naive"]}, log)
    if "mreq" in spec:
        m = spec["mreq"]
        mcfg = MRVQConfig(dim=teacher.dimension, teacher_rate=int(round(teacher.frame_rate)), **_split(m, _MRVQ_KEYS))
        tcfg = MReQTrainConfig(**_split(m, _MREQ_TRAIN_KEYS))
        if steps is not None:
            tcfg = MReQTrainConfig(**{**_split(m, _MREQ_TRAIN_KEYS), "steps": steps})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tcfg.seed)
            mrvq = MRVQ(mcfg)
        model = MReQModel(teacher, mrvq, MReQLossConfig(**_split(m, _MREQ_LOSS_KEYS)))
        trainer = MReQTrainer(model, [torch.from_numpy(w) for w in wavs], tcfg, out / "mreq-train", device=device)
        t0 = time.perf_counter()
        trainer.fit(log=lambda row: log("[mreq] " + " ".join(f"{k} {v:.4g}" for k, v in row.items())))
        log(f"MReQ: {trainer.step} steps ({time.perf_counter() - t0:.1f} s this run)")
        tok = MReQTokenizer(teacher, model.mrvq.eval())
        tok.save(out / "mreq", half=bool(m.get("half", True)))
    (out / "training.json").write_text(json.dumps({"model": "codec", "spec": spec, "texts": len(texts),
                                                   "clips": len(wavs)}, indent=2, default=str))
    return out


__all__ = ["parse_codec_job", "run_codec_training", "corpus_texts", "speak_corpus", "fit_mel_codec", "DEFAULT_VOICES"]
