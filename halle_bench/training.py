"""`halle-bench train`: train VALL-E, MReQ or HALL-E from one TOML file.

`load_train_config(path) -> TrainJob` parses and checks the file (every problem is a
`ConfigError` with file and line, unknown keys included); `run_training(job) -> Path`
trains and returns the checkpoint folder (`job.out`). The maths lives in the library
(baselines/train.py, baselines/mreq.py, baselines/train_halle.py); this module only maps
the config onto it, lays out the output folder and makes re-running resume.

Output folder (`out`), per model:

* valle: a VALL-E checkpoint (`VALLE.save`: model.safetensors, config.json, codec/) plus
  `train/ar/` and `train/nar/` (the shared loop's step-XXXXXXX/ and last/ with optimiser
  and RNG state) and `tokens/` (codec tokens cached per audio sha256).
* mreq: an MReQ tokenizer folder (`MReQTokenizer.save`: codec/, mrvq.*, tokenizer.json)
  plus `train/` (MReQTrainer's resumable state).
* halle: a HALL-E checkpoint (`HALLE.save`: model.safetensors, config.json, tokenizer/)
  plus `train/ar/`, `train/nar/`.

Every model also gets `training.json` (model, steps reached, codec identity, init report,
skipped items). Decisions where the brief is silent:

* Re-running on an existing `out` resumes each stage from its `last/` state; with more
  `steps` it continues (the cosine schedule is then laid over the new total). An `out`
  trained for another model or with another codec is refused rather than mixed.
* A random codec (`tiny`, `teacher_48hz`) is fitted once (seeded k-means on the first
  `fit_items` utterances) and saved in `out/codec/`; a resumed run loads that copy, so the
  tokens never change under a half-trained model.
* VALL-E's AR and NAR, and HALL-E's AR and NAR, are trained one after the other with the
  same `[train]` values; `[train.ar]` / `[train.nar]` override keys for one stage.
* `with_overrides(steps=...)` replaces `steps` for every stage (stage tables included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ConfigError, HalleBenchError, UtteranceError
from .train_config import (
    CODEC_KINDS,
    MODELS,
    MREQ_TINY,
    _TF_KEYS,
    CodecSpec,
    DataSpec,
    TrainJob,
    load_train_config,
    parse_train_config,
)

__all__ = ["CODEC_KINDS", "MODELS", "CodecSpec", "DataSpec", "TrainJob", "load_train_config",
           "parse_train_config", "run_training"]


def run_training(job: TrainJob, reporter=None) -> Path:
    """Train (or resume) and write the checkpoint folder `job.out`; returns it."""
    from .progress import NullReporter
    from .runner import resolve_device

    reporter = reporter or NullReporter()
    device = resolve_device(str(job.train.get("device", "cpu")))
    job = job.with_overrides(device=device) if device != job.train.get("device") else job
    job.out.mkdir(parents=True, exist_ok=True)
    _check_out(job)
    if job.model == "codec":  # espeak-ng corpus, no manifest: baselines/codec_train.py
        from halle_bench.baselines.codec_train import run_codec_training

        return run_codec_training(job.out, job.model_config, job.path.parent, job.train.get("steps"), device,
                                  log=reporter.log)
    from .data import read_manifest

    utts = [u for u in read_manifest(job.data.manifest, job.data.format) if u.audio is not None]
    if job.data.limit is not None:
        utts = utts[: job.data.limit]
    if not utts:
        raise ConfigError("the manifest has no utterances with audio to train on", job.data.manifest)
    reporter.log(f"training {job.model} ({job.size}) on {len(utts)} utterances from {job.data.manifest} -> {job.out}")
    return {"valle": _train_valle, "mreq": _train_mreq, "halle": _train_halle}[job.model](job, utts, reporter)


def _check_out(job: TrainJob) -> None:
    """Refuse to resume a folder trained for another model."""
    p = job.out / "training.json"
    if p.exists():
        try:
            prev = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return
        if prev.get("model") not in (None, job.model):
            raise job.error(f"{job.out} holds a {prev.get('model')!r} training, not {job.model!r}; "
                            "choose another `out`", "out")


def _lib_train_config(job: TrainJob, stage: str | None, n_codebooks: int | None = None):
    """[train] (+ the stage's table) -> baselines.train.TrainConfig."""
    from halle_bench.baselines.train import TrainConfig

    v = job.stage_values(stage)
    names = {"steps": "steps", "batch_size": "batch_size", "lr": "lr", "warmup": "warmup_steps",
             "min_lr_ratio": "min_lr_ratio", "weight_decay": "weight_decay", "grad_clip": "grad_clip",
             "log_every": "log_every", "save_every": "ckpt_every", "seed": "seed", "device": "device", "dtype": "dtype"}
    kw: dict[str, Any] = {names[k]: val for k, val in v.items() if k in names}
    if "betas" in v:
        kw["betas"] = tuple(float(b) for b in v["betas"])
    for k in ("lr", "min_lr_ratio", "weight_decay", "grad_clip"):
        if k in kw:
            kw[k] = float(kw[k])
    return TrainConfig(n_codebooks=n_codebooks, **kw)


def _logger(reporter, what: str):
    def log(row: dict[str, float]) -> None:
        extra = "".join(f" {k} {row[k]:.4g}" for k in ("accuracy", "lr", "fld", "nac") if k in row)
        reporter.log(f"[{what}] step {int(row['step'])} loss {row['loss']:.4f}{extra}")

    return log


def _load(path: Path, sr: int):
    from .audio import load_audio

    x, got, _ = load_audio(path, sr=sr)
    return x, got


def _random_codec_config(job: TrainJob):
    from halle_bench.baselines.codec import CodecConfig

    spec = job.codec
    ov = dict(spec.overrides)
    if job.model == "mreq" and spec.kind == "tiny" and "ratios" not in ov:
        # MReQ's teacher runs at 48 Hz: the tiny codec with a hop of 500 at 24 kHz.
        ov.update(ratios=(5, 5, 5, 4), name="tiny48hz")
    return (CodecConfig.tiny if spec.kind == "tiny" else CodecConfig.teacher_48hz)(**ov)


def _make_codec(job: TrainJob, utts, reporter):
    """The codec of a valle / mreq job (see the module docstring for the random ones)."""
    from halle_bench.baselines.checkpoint import CheckpointError
    from halle_bench.baselines.codec import Codec

    spec = job.codec
    assert spec is not None
    if spec.kind == "encodec_24khz":
        try:
            return Codec.encodec_24khz(spec.checkpoint, spec.bandwidth)
        except (HalleBenchError, OSError, RuntimeError) as e:
            raise job.error(f"[codec]: {e}", "checkpoint" if spec.checkpoint else "kind", "[codec]") from None
    if spec.kind == "checkpoint":
        try:
            return Codec.load(spec.checkpoint)
        except (HalleBenchError, OSError, KeyError, ValueError, TypeError) as e:
            raise job.error(f"[codec]: cannot load the codec folder {spec.checkpoint} "
                            f"(a folder written by Codec.save, with codec.json + codec.safetensors): {e}",
                            "checkpoint", "[codec]") from None
    cfg = _random_codec_config(job)
    saved = job.out / "codec"
    if (saved / "codec.json").exists() and (saved / "codec.safetensors").exists():
        try:
            codec = Codec.load(saved)
        except (CheckpointError, OSError, KeyError, ValueError, TypeError) as e:
            raise job.error(f"{saved}: cannot reload the fitted codec ({e}); remove {job.out} to start over", "out") from None
        if codec.cfg != cfg:
            raise job.error(f"{job.out} was trained with another codec ({codec.cfg}); choose another `out`",
                            "kind", "[codec]")
        reporter.log(f"codec: reusing the fitted {cfg.name} codec in {saved}")
        return codec
    codec = Codec.from_config(cfg, seed=spec.seed)
    if spec.fit:
        wavs = []
        for u in utts[: spec.fit_items]:
            try:
                wavs.append(_load(u.audio, codec.sample_rate)[0])
            except (UtteranceError, OSError, ValueError) as e:
                reporter.log(f"codec fit: skipping {u.id}: {e}")
        if not wavs:
            raise ConfigError("no readable audio to fit the codec's codebooks on", job.data.manifest)
        codec.fit_codebooks(wavs, codec.sample_rate, seed=spec.seed, iters=spec.fit_iters)
        reporter.log(f"codec: fitted {cfg.name} codebooks on {len(wavs)} utterances")
    codec.save(saved)
    return Codec.load(saved)  # so that weights_sha256 names the saved file


def _transformer_kw(job: TrainJob) -> dict[str, Any]:
    return {k: v for k, v in job.model_config.items() if k in _TF_KEYS}


def _write_summary(job: TrainJob, info: dict[str, Any]) -> None:
    info = {"model": job.model, "config": str(job.path), "size": job.size, "model_config": dict(job.model_config),
            "train": dict(job.train), "stages": job.stages, **info}
    tmp = job.out / "training.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str))
    tmp.replace(job.out / "training.json")


def _train_valle(job: TrainJob, utts, reporter) -> Path:
    from halle_bench.baselines.text import TextFrontend
    from halle_bench.baselines.train import build_examples, train
    from halle_bench.baselines.valle import VALLE

    codec = _make_codec(job, utts, reporter)
    fe = TextFrontend()
    seed = int(job.train.get("seed", 0))
    try:
        valle = VALLE.build(codec, fe, size=job.size, seed=seed, **_transformer_kw(job))
    except (TypeError, ValueError) as e:
        raise job.error(f"[model_config]: {e}", "size", "[model_config]") from None
    examples, errors = build_examples([(u.audio, u.text) for u in utts], fe, codec, job.out / "tokens",
                                      job.data.max_seconds)
    for e in errors:
        reporter.log(f"skipped {e}")
    if not examples:
        raise ConfigError(f"no usable training examples ({len(errors)} skipped: {errors[:3]})", job.data.manifest)
    ar = train(valle.ar, examples, _lib_train_config(job, "ar", n_codebooks=1), job.out / "train" / "ar",
               {"ar": valle.ar.cfg.to_dict()}, on_log=_logger(reporter, "valle ar"))
    nar = train(valle.nar, examples, _lib_train_config(job, "nar"), job.out / "train" / "nar",
                {"nar": valle.nar.cfg.to_dict()}, on_log=_logger(reporter, "valle nar"))
    valle.lm.to("cpu")
    steps = {"ar": ar.step, "nar": nar.step}
    valle.save(job.out, extra={"step": steps, "last": {"ar": ar.history[-1:], "nar": nar.history[-1:]}})
    _write_summary(job, {"steps": steps, "codec": codec.identity(), "n_examples": len(examples), "skipped": errors})
    reporter.log(f"VALL-E checkpoint: {job.out} (AR step {ar.step}, NAR step {nar.step})")
    return job.out


def _train_mreq(job: TrainJob, utts, reporter) -> Path:
    import torch

    from halle_bench.baselines.mreq import MReQModel, MReQTrainConfig, MReQTrainer
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
    from halle_bench.baselines.mrvq import MRVQ, MRVQConfig

    codec = _make_codec(job, utts, reporter)
    fr = float(codec.frame_rate)
    kw = dict(MREQ_TINY if job.size == "tiny" else {})
    kw.update(job.model_config)
    try:
        if abs(fr - round(fr)) > 1e-6:
            raise ValueError(f"the teacher codec's frame rate {fr:g} Hz is not a whole number")
        cfg = MRVQConfig(dim=codec.dimension, teacher_rate=int(round(fr)), **kw)
    except (TypeError, ValueError) as e:
        key = next(iter(job.model_config), None)
        raise job.error(f"MRVQ on a {fr:g} Hz codec: {e}", key or "kind", "[model_config]" if key else "[codec]") from None
    v = job.train
    seed = int(v.get("seed", 0))
    steps = int(v.get("steps", MReQTrainConfig.steps))
    tcfg = MReQTrainConfig(
        steps=steps, lr=float(v.get("lr", MReQTrainConfig.lr)), weight_decay=float(v.get("weight_decay", 0.0)),
        batch_size=int(v.get("batch_size", MReQTrainConfig.batch_size)),
        segment_blocks=int(v.get("segment_blocks", MReQTrainConfig.segment_blocks)),
        grad_clip=float(v.get("grad_clip", MReQTrainConfig.grad_clip)), seed=seed,
        # MReQTrainer saves when step % ckpt_every == 0 and at the end; 0 means "only at the end"
        ckpt_every=int(v.get("save_every") or max(1, steps)), log_every=int(v.get("log_every", MReQTrainConfig.log_every)),
    )
    wavs, errors = [], []
    for u in utts:
        try:
            x, _ = _load(u.audio, codec.sample_rate)
            if job.data.max_seconds is None or len(x) <= job.data.max_seconds * codec.sample_rate:
                wavs.append(torch.from_numpy(x))
        except (UtteranceError, OSError, ValueError) as e:
            errors.append(f"{u.id}: {e}")
            reporter.log(f"skipped {u.id}: {e}")
    if not wavs:
        raise ConfigError(f"no usable training audio ({len(errors)} skipped: {errors[:3]})", job.data.manifest)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mrvq = MRVQ(cfg)
    (job.out / "train").mkdir(parents=True, exist_ok=True)
    trainer = MReQTrainer(MReQModel(codec, mrvq), wavs, tcfg, job.out / "train", device=str(v.get("device", "cpu")))
    trainer.fit(log=_logger(reporter, "mreq"))
    codec.to("cpu")
    mrvq.to("cpu")
    MReQTokenizer(codec, mrvq).save(job.out)
    _write_summary(job, {"steps": {"mrvq": trainer.step}, "codec": codec.identity(), "n_examples": len(wavs),
                         "skipped": errors, "last": trainer.history[-1:]})
    reporter.log(f"MReQ tokenizer: {job.out} (step {trainer.step})")
    return job.out


def _train_halle(job: TrainJob, utts, reporter) -> Path:
    from halle_bench.baselines.checkpoint import CheckpointError
    from halle_bench.baselines.halle import HALLE
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
    from halle_bench.baselines.text import TextFrontend
    from halle_bench.baselines.train_halle import HalleExamples, prepare_examples, train_ar, train_nar

    try:
        tok = MReQTokenizer.load(job.tokenizer)
    except (HalleBenchError, OSError, KeyError, ValueError) as e:
        raise job.error(f"[tokenizer]: {e} (train one with model = \"mreq\")", "path", "[tokenizer]") from None
    fe = TextFrontend()
    seed = int(job.train.get("seed", 0))
    win = {k: int(job.model_config[k]) for k in ("window", "overlap") if k in job.model_config}
    try:
        halle = HALLE.build(tok, fe, size=job.size, seed=seed, **win, **_transformer_kw(job))
    except (TypeError, ValueError) as e:
        raise job.error(f"[model_config]: {e}", "size", "[model_config]") from None
    init = None
    if job.init_valle is not None:
        try:
            init = halle.init_from_valle(job.init_valle)
        except (CheckpointError, OSError, KeyError, ValueError) as e:
            raise job.error(f"[init]: cannot initialise from VALL-E: {e}", "valle", "[init]") from None
        reporter.log(f"init from VALL-E {job.init_valle}: {len(init['loaded'])} AR weights loaded, "
                     f"{len(init['skipped'])} skipped")
    ex, errors = HalleExamples([], []), []
    for u in utts:
        try:
            x, sr = _load(u.audio, tok.sample_rate)
            if job.data.max_seconds is not None and len(x) > job.data.max_seconds * sr:
                continue
            one = prepare_examples(tok, fe, [(u.text, x, sr)])
        except (UtteranceError, OSError, ValueError) as e:
            errors.append(f"{u.id}: {e}")
            reporter.log(f"skipped {u.id}: {e}")
            continue
        for e_ in (*one.ar, *one.nar):
            e_.id = u.id
        ex.ar.extend(one.ar)
        ex.nar.extend(one.nar)
    if not ex.ar:
        raise ConfigError(f"no usable training examples ({len(errors)} skipped: {errors[:3]})", job.data.manifest)
    ar = train_ar(halle, ex, _lib_train_config(job, "ar"), job.out / "train", on_log=_logger(reporter, "halle ar"))
    nar = train_nar(halle, ex, _lib_train_config(job, "nar"), job.out / "train", on_log=_logger(reporter, "halle nar"))
    halle.to("cpu")
    steps = {"ar": ar.step, "nar": nar.step}
    halle.save(job.out, extra={"step": steps, "init_valle": None if job.init_valle is None else str(job.init_valle),
                               "last": {"ar": ar.history[-1:], "nar": nar.history[-1:]}})
    _write_summary(job, {"steps": steps, "tokenizer": str(job.tokenizer), "init": init,
                         "n_examples": len(ex.ar), "skipped": errors})
    reporter.log(f"HALL-E checkpoint: {job.out} (AR step {ar.step}, NAR step {nar.step})")
    return job.out

__all__ = ["TrainJob", "DataSpec", "CodecSpec", "load_train_config", "parse_train_config", "run_training",
           "MODELS", "CODEC_KINDS"]
