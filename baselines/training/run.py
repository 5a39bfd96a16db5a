"""`halle-bench train`: train VALL-E, MReQ or HALL-E from one TOML file.

`load_train_config(path) -> TrainJob` (config.py) parses and checks the file (every problem is a
`ConfigError` with file and line, unknown keys included); `run_training(job) -> Path`
trains and returns the checkpoint folder (`job.out`). The maths lives in the library
(baselines/train.py, baselines/mreq.py, baselines/train_halle.py); this module only maps
the config onto it, lays out the output folder and makes re-running resume.

Output folder (`out`), per model:

* valle: a VALL-E checkpoint (`VALLE.save`: model.safetensors, config.json, codec/) plus
  `train/ar/` and `train/nar/` (the loop's step-XXXXXXX/ and last/ with optimiser, EMA,
  sampler position and RNG state) and `tokens/` (the token shards, see shards.py).
* mreq: an MReQ tokenizer folder (`MReQTokenizer.save`: codec/, mrvq.*, tokenizer.json)
  plus `train/` (MReQTrainer's resumable state).
* halle: a HALL-E checkpoint (`HALLE.save`: model.safetensors, config.json, tokenizer/)
  plus `train/ar/`, `train/nar/`.

Every model also gets `training.json` (model, steps reached, codec identity, init report,
skipped items, validation ids) and `metrics.jsonl` / `metrics.csv` / `curves.png`.
Under torchrun every rank runs the same function; rank 0 writes. Decisions where the brief
is silent:

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

from halle_bench.errors import ConfigError, HalleBenchError, UtteranceError

from . import stages as S
from .config import (
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
    """Train (or resume) and write the checkpoint folder `job.out`; returns it.

    Under `torchrun` every rank runs this; rank 0 alone writes checkpoints, metrics and logs.
    """
    from halle_bench.data import read_manifest
    from halle_bench.progress import NullReporter
    from halle_bench.runner import resolve_device

    from . import dist as D

    reporter = reporter or NullReporter()
    device = resolve_device(str(job.train.get("device", "cpu")))
    info, device = D.init_distributed(device)
    job = job.with_overrides(device=device) if device != job.train.get("device") else job
    if not info.is_main:
        reporter = NullReporter()
    job.out.mkdir(parents=True, exist_ok=True)
    _check_out(job)
    if job.model == "codec":  # an espeak-ng corpus of its own, no manifest: baselines/codec_train.py
        from halle_bench.baselines.codec_train import run_codec_training

        return run_codec_training(job.out, job.model_config, job.path.parent, job.train.get("steps"), device,
                                  log=reporter.log)
    if job.data.pack is not None:  # a token pack (pack.py): no audio but the held-out prompts
        from .pack import Pack

        utts = Pack.open(job).utterances()
    else:
        utts = [u for u in read_manifest(job.data.manifest, job.data.format) if u.audio is not None]
    if job.data.limit is not None:
        utts = utts[: job.data.limit]
    if not utts:
        raise ConfigError("the manifest has no utterances with audio to train on", job.data.manifest)
    reporter.log(f"training {job.model} ({job.size}) on {len(utts)} utterances from "
                 f"{job.data.pack or job.data.manifest} -> {job.out}"
                 + (f" on {info.world} processes" if info.active else ""))
    return MODEL_TRAINERS[job.model](job, utts, reporter)


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
             "log_every": "log_every", "save_every": "ckpt_every", "seed": "seed", "device": "device", "dtype": "dtype",
             "max_frames": "max_frames", "bucket_pool": "bucket_pool", "accum_steps": "accum_steps",
             "num_workers": "num_workers", "ema": "ema", "val_every": "val_every",
             "resident": "resident"}
    kw: dict[str, Any] = {names[k]: val for k, val in v.items() if k in names}
    if "betas" in v:
        kw["betas"] = tuple(float(b) for b in v["betas"])
    for k in ("lr", "min_lr_ratio", "weight_decay", "grad_clip", "ema"):
        if k in kw:
            kw[k] = float(kw[k])
    return TrainConfig(n_codebooks=n_codebooks, **kw)


def _load(path: Path, sr: int):
    from halle_bench.audio import load_audio

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
    from halle_bench.baselines.codec_api import load_codec

    spec = job.codec
    assert spec is not None
    from .pack import encoder_folder

    if encoder_folder(job, "codec") is not None:  # a token pack's own (fitted) codec
        return load_codec(encoder_folder(job, "codec"))
    if spec.kind == "encodec_24khz":
        try:
            return Codec.encodec_24khz(spec.checkpoint, spec.bandwidth)
        except (HalleBenchError, OSError, RuntimeError) as e:
            raise job.error(f"[codec]: {e}", "checkpoint" if spec.checkpoint else "kind", "[codec]") from None
    if spec.kind == "shipped-teacher":
        from .shipped import shipped_dir

        try:
            return load_codec(shipped_dir(spec.kind))
        except (HalleBenchError, OSError, KeyError, ValueError, TypeError) as e:
            raise job.error(f"[codec]: {e}", "kind", "[codec]") from None
    if spec.kind == "checkpoint":
        try:
            return load_codec(spec.checkpoint)
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


def _speak_options(job: TrainJob, kind: str):
    """The speak check's sampling ([speak] top_k / temperature / max_len_ratio): greedy, with the
    benchmark system's length cap (VALL-E 16 frames per phoneme, HALL-E 2 at 8 Hz; before,
    HALL-E's check ran with VALL-E's 16, up to 2 s of babble per phoneme)."""
    from halle_bench.baselines.halle_system import HALLESystem
    from halle_bench.baselines.valle_system import VALLESystem

    from .speak import sampling_options

    cap = (HALLESystem if kind == "halle" else VALLESystem).default_max_len_ratio
    return sampling_options(job.speak, cap)


def _transformer_kw(job: TrainJob) -> dict[str, Any]:
    return {k: v for k, v in job.model_config.items() if k in _TF_KEYS}


def _write_summary(job: TrainJob, info: dict[str, Any]) -> None:
    info = {"model": job.model, "config": str(job.path), "size": job.size, "model_config": dict(job.model_config),
            "train": dict(job.train), "stages": job.stages, **info}
    tmp = job.out / "training.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str))
    tmp.replace(job.out / "training.json")


def _report_examples(job: TrainJob, reporter, tok, errors: list[str], n_train: int, n_val: int) -> None:
    """Log what was skipped and the token stage's reuse; no training example at all is a ConfigError."""
    for e in errors:
        reporter.log(f"skipped {e}")
    if n_train == 0:
        raise ConfigError(f"no usable training examples ({len(errors)} skipped: {errors[:3]})", job.data.manifest)
    reporter.log(f"tokens: {tok.stats.encoded} encoded, {tok.stats.reused} reused, {tok.hashed} wavs hashed; "
                 f"{n_train} train / {n_val} validation examples")


def _codec_on_all_ranks(job: TrainJob, utts, reporter):
    """Rank 0 builds (and fits, saves) the codec; the others then load the saved copy."""
    from . import dist as D

    codec = _make_codec(job, utts, reporter) if D.current().is_main else None
    D.barrier()
    return codec if codec is not None else _make_codec(job, utts, reporter)


def _set_align_prior(job: TrainJob, ar, reporter) -> None:
    """[align]: the AR's training-only alignment prior (baselines/align_prior.py)."""
    if job.align is None:
        return
    from halle_bench.baselines.align_prior import AlignPrior

    try:
        ar.align_prior = AlignPrior(**job.align)
        if max(ar.align_prior.layers) >= len(ar.decoder.layers):
            raise ValueError(f"layer {max(ar.align_prior.layers)} does not exist (the AR has {len(ar.decoder.layers)})")
    except ValueError as e:
        raise job.error(f"[align]: {e}", "layers", "[align]") from None
    reporter.log(f"alignment prior: {ar.align_prior}")


def _train_valle(job: TrainJob, utts, reporter) -> Path:
    from halle_bench.baselines.valle import VALLE

    from .pack import frontend_for, tokenize_for
    from .prepare import examples, split_items
    from .shards import codec_encoder

    codec = _codec_on_all_ranks(job, utts, reporter)
    fe = frontend_for(job)  # a pack's stored text ids, or espeak-ng
    seed = int(job.train.get("seed", 0))
    device = str(job.train.get("device", "cpu"))
    try:
        valle = VALLE.build(codec, fe, size=job.size, seed=seed, **_transformer_kw(job))
    except (TypeError, ValueError) as e:
        raise job.error(f"[model_config]: {e}", "size", "[model_config]") from None
    train_utts, val_utts = S.split(job, utts, split_items, seed)
    codec.to(device)
    tok = tokenize_for(job, utts, codec_encoder(codec), {"tokens": "codec", **codec.identity()}, codec.sample_rate,
                       reporter)
    codec.to("cpu")
    errors = list(tok.errors)
    mf = None if job.data.max_seconds is None else job.data.max_seconds * codec.frame_rate
    tr = examples(tok, train_utts, fe, "codes", mf, errors)
    va = examples(tok, val_utts, fe, "codes", None, errors)
    _report_examples(job, reporter, tok, errors, len(tr), len(va))
    ar_cfg, nar_cfg = _lib_train_config(job, "ar", n_codebooks=1), _lib_train_config(job, "nar")

    opts = _speak_options(job, "valle")

    def synth():
        valle.to(device)
        return lambda text, pw, psr, pt, sd: (valle.synthesize(text, pw, pt, opts, seed=sd, prompt_sr=psr),
                                              valle.sample_rate)

    _set_align_prior(job, valle.ar, reporter)
    ar = S.stage(job, reporter, "valle ar", valle.ar, tr, va, ar_cfg, job.out / "train" / "ar", {"ar": valle.ar.cfg.to_dict()})
    nar = S.stage(job, reporter, "valle nar", valle.nar, tr, va, nar_cfg, job.out / "train" / "nar",
                 {"nar": valle.nar.cfg.to_dict()}, S.speak_hook(job, val_utts, codec.sample_rate, synth, nar_cfg.steps))
    valle.lm.to("cpu")
    steps = {"ar": ar.step, "nar": nar.step}
    from . import dist as D

    if D.current().is_main:
        valle.save(job.out, extra={"step": steps, "last": {"ar": ar.history[-1:], "nar": nar.history[-1:]}})
        _write_summary(job, {"steps": steps, "codec": codec.identity(), "n_examples": len(tr), "n_validation": len(va),
                             "validation_ids": [e[2] for e in va.entries], "skipped": errors,
                             "tokens": str(tok.store.dir), "ema": ar_cfg.ema or nar_cfg.ema})
        S.finish_metrics(job)
    reporter.log(f"VALL-E checkpoint: {job.out} (AR step {ar.step}, NAR step {nar.step})")
    return job.out


def _train_mreq(job: TrainJob, utts, reporter) -> Path:
    import torch

    from halle_bench.baselines.mreq import MReQModel, MReQTrainConfig
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
    from halle_bench.baselines.mrvq import MRVQ, MRVQConfig

    from . import dist as D
    from .metrics import MetricsLog
    from .mreq_stream import StreamingMReQTrainer, audio_refs
    from .prepare import split_items

    if D.current().active:
        raise job.error("MReQ training runs in one process (start it without torchrun)", "model")
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
    train_utts, val_utts = S.split(job, utts, split_items, seed)
    refs, errors = audio_refs([u.audio for u in train_utts])
    vrefs, verr = audio_refs([u.audio for u in val_utts])
    errors += verr
    if job.data.max_seconds is not None:
        refs = [r for r in refs if r.frames <= job.data.max_seconds * r.sample_rate]
    for e in errors:
        reporter.log(f"skipped {e}")
    if not refs:
        raise ConfigError(f"no usable training audio ({len(errors)} skipped: {errors[:3]})", job.data.manifest)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mrvq = MRVQ(cfg)
    (job.out / "train").mkdir(parents=True, exist_ok=True)
    trainer = StreamingMReQTrainer(MReQModel(codec, mrvq), refs, tcfg, job.out / "train", device=str(v.get("device", "cpu")))
    log = MetricsLog(job.out / "metrics.jsonl", "mreq", resume_step=trainer.step)
    val_every = int(v.get("val_every", 0))
    val_batch = trainer.crops(-1, max(4, tcfg.batch_size), vrefs) if vrefs else None
    show = S.logger(reporter, "mreq")
    with S.bar(reporter, "mreq", steps) as bar:
        while trainer.step < steps:
            row = trainer.train_step()
            bar.advance(1)
            if trainer.step % tcfg.log_every == 0 or trainer.step == steps:
                log.write(row)
                show(row)
            if val_batch is not None and ((val_every and trainer.step % val_every == 0) or trainer.step == steps):
                vrow = {"step": trainer.step, **{f"val_{k}": x for k, x in trainer.evaluate(val_batch).items()}}
                log.write(vrow)
                show(vrow)
            if trainer.step % tcfg.ckpt_every == 0 or trainer.step == steps:
                trainer.save()
    codec.to("cpu")
    mrvq.to("cpu")
    MReQTokenizer(codec, mrvq).save(job.out)
    _write_summary(job, {"steps": {"mrvq": trainer.step}, "codec": codec.identity(), "n_examples": len(refs),
                         "n_validation": len(vrefs), "skipped": errors, "last": trainer.history[-1:]})
    S.finish_metrics(job)
    reporter.log(f"MReQ tokenizer: {job.out} (step {trainer.step})")
    return job.out


def _train_halle(job: TrainJob, utts, reporter) -> Path:
    from halle_bench.baselines.checkpoint import CheckpointError
    from halle_bench.baselines.halle import HALLE
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
    from halle_bench.baselines.train_halle import NARTrainable

    from . import dist as D
    from .pack import encoder_folder, frontend_for, tokenize_for
    from .prepare import examples, split_items
    from .shards import halle_encoder

    try:
        tok = MReQTokenizer.load(encoder_folder(job, "tokenizer") or job.tokenizer)
    except (HalleBenchError, OSError, KeyError, ValueError) as e:
        raise job.error(f"[tokenizer]: {e} (train one with model = \"mreq\")", "path", "[tokenizer]") from None
    fe = frontend_for(job)
    seed = int(job.train.get("seed", 0))
    device = str(job.train.get("device", "cpu"))
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
    train_utts, val_utts = S.split(job, utts, split_items, seed)
    tok.codec.to(device)
    tok.mrvq.to(device)
    toks = tokenize_for(job, utts, halle_encoder(tok), {"tokens": "mreq", **tok.identity()}, tok.sample_rate, reporter)
    tok.codec.to("cpu")
    tok.mrvq.to("cpu")
    errors = list(toks.errors)
    rates = tok.rates
    mf = None if job.data.max_seconds is None else job.data.max_seconds
    ar_tr = examples(toks, train_utts, fe, "ar", None if mf is None else mf * rates[0], errors)
    nar_tr = examples(toks, train_utts, fe, "nar", None if mf is None else mf * rates[-1], errors)
    ar_va = examples(toks, val_utts, fe, "ar", None, [])
    nar_va = examples(toks, val_utts, fe, "nar", None, [])
    _report_examples(job, reporter, toks, errors, len(ar_tr), len(ar_va))
    ar_cfg, nar_cfg = _lib_train_config(job, "ar"), _lib_train_config(job, "nar")

    opts = _speak_options(job, "halle")

    def synth():
        halle.to(device)
        return lambda text, pw, psr, pt, sd: (halle.synthesize(text, pw, pt, opts, seed=sd, prompt_sr=psr),
                                              halle.sample_rate)

    _set_align_prior(job, halle.ar, reporter)
    ar = S.stage(job, reporter, "halle ar", halle.ar, ar_tr, ar_va, ar_cfg, job.out / "train" / "ar",
                {"ar": halle.ar.cfg.to_dict()})
    nar = S.stage(job, reporter, "halle nar", NARTrainable(halle.nar, halle.mrvq), nar_tr, nar_va, nar_cfg,
                 job.out / "train" / "nar", {"nar": halle.nar.cfg.to_dict()},
                 S.speak_hook(job, val_utts, tok.sample_rate, synth, nar_cfg.steps))
    halle.to("cpu")
    steps = {"ar": ar.step, "nar": nar.step}
    if D.current().is_main:
        halle.save(job.out, extra={"step": steps, "init_valle": None if job.init_valle is None else str(job.init_valle),
                                   "last": {"ar": ar.history[-1:], "nar": nar.history[-1:]}})
        _write_summary(job, {"steps": steps, "tokenizer": str(job.tokenizer), "init": init, "n_examples": len(ar_tr),
                             "n_validation": len(ar_va), "validation_ids": [e[2] for e in ar_va.entries],
                             "skipped": errors, "tokens": str(toks.store.dir), "ema": ar_cfg.ema or nar_cfg.ema})
        S.finish_metrics(job)
    reporter.log(f"HALL-E checkpoint: {job.out} (AR step {ar.step}, NAR step {nar.step})")
    return job.out


# one function per model kind (the codec branch adds "codec" here)
MODEL_TRAINERS = {"valle": _train_valle, "mreq": _train_mreq, "halle": _train_halle}

__all__ = ["TrainJob", "DataSpec", "CodecSpec", "load_train_config", "parse_train_config", "run_training",
           "MODELS", "CODEC_KINDS", "MODEL_TRAINERS"]
