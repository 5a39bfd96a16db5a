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
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import _line_of, _line_of_header
from .errors import ConfigError, HalleBenchError, UtteranceError

MODELS = ("valle", "mreq", "halle")
CODEC_KINDS = ("tiny", "teacher_48hz", "encodec_24khz", "checkpoint")
SIZES = ("tiny", "paper")

_TOP = {"model", "out", "data", "codec", "tokenizer", "init", "model_config", "train"}
_DATA = {"manifest", "format", "limit", "max_seconds"}
_CODEC_OWN = {"kind", "checkpoint", "bandwidth", "seed", "fit", "fit_items", "fit_iters"}
# CodecConfig fields a random codec may override (tiny / teacher_48hz)
_CODEC_FIELDS = {"sample_rate", "ratios", "n_q", "codebook_size", "dimension", "n_filters",
                 "n_residual_layers", "lstm", "causal"}
_TF_KEYS = {"d_model", "n_heads", "n_layers", "d_ff", "dropout"}
_MODEL_KEYS = {
    "valle": _TF_KEYS,
    "halle": _TF_KEYS | {"window", "overlap"},
    "mreq": {"rates", "latent_dim", "hidden", "preq_n_q", "quant_n_q", "postq_n_q", "codebook_size",
             "ema", "decay", "dead_threshold"},
}
# The tiny MRVQ (tests, CPU smoke runs); "paper" is MRVQConfig's defaults.
MREQ_TINY = {"hidden": 16, "codebook_size": 16}

# [train] key -> (check, description); names map onto TrainConfig / MReQTrainConfig below.
_INT_POS = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer")
_INT_NN = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative integer")
_NUM_POS = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a positive number")
_NUM_NN = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a non-negative number")
_TRAIN_CHECKS: dict[str, tuple[Any, str]] = {
    "steps": _INT_NN,
    "batch_size": _INT_POS,
    "lr": _NUM_POS,
    "warmup": _INT_NN,
    "min_lr_ratio": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1, "a number in [0, 1]"),
    "weight_decay": _NUM_NN,
    "betas": (lambda v: isinstance(v, list) and len(v) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in v),
              "two numbers in [0, 1)"),
    "grad_clip": _NUM_POS,
    "log_every": _INT_POS,
    "save_every": _INT_NN,
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "device": (lambda v: isinstance(v, str) and re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", v) is not None,
               "cpu | cuda | cuda:N | mps | auto"),
    "dtype": (lambda v: v in ("float32", "bfloat16", "float16"), "float32 | bfloat16 | float16"),
    "segment_blocks": _INT_POS,
}
_TRAIN_FOR = {
    "valle": set(_TRAIN_CHECKS) - {"segment_blocks"},
    "halle": set(_TRAIN_CHECKS) - {"segment_blocks"},
    "mreq": {"steps", "batch_size", "lr", "weight_decay", "grad_clip", "log_every", "save_every", "seed",
             "device", "segment_blocks"},
}
_STAGE_KEYS = set(_TRAIN_CHECKS) - {"seed", "device"}  # what [train.ar] / [train.nar] may change


@dataclass(frozen=True)
class DataSpec:
    manifest: Path
    format: str | None = None
    limit: int | None = None
    max_seconds: float | None = None


@dataclass(frozen=True)
class CodecSpec:
    kind: str
    checkpoint: Path | None = None
    bandwidth: float = 6.0
    seed: int = 0
    fit: bool = True  # k-means the codebooks of a random codec on the data
    fit_items: int = 100
    fit_iters: int = 10
    overrides: dict[str, Any] = field(default_factory=dict)  # CodecConfig fields


@dataclass(frozen=True)
class TrainJob:
    path: Path
    model: str
    out: Path
    data: DataSpec
    codec: CodecSpec | None = None
    tokenizer: Path | None = None
    init_valle: Path | None = None
    size: str = "tiny"
    model_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # "ar" / "nar" overrides
    text: str = ""

    def with_overrides(self, steps: int | None = None, device: str | None = None) -> "TrainJob":
        """The CLI's `--steps N` / `--device D`: replace the value for every stage."""
        train = dict(self.train)
        stages = {k: dict(v) for k, v in self.stages.items()}
        for key, val in (("steps", steps), ("device", device)):
            if val is None:
                continue
            ok, what = _TRAIN_CHECKS[key]
            if not ok(val):
                raise ConfigError(f"--{key} must be {what}, got {val!r}")
            train[key] = val
            for st in stages.values():
                st.pop(key, None)
        return replace(self, train=train, stages=stages)

    def error(self, msg: str, key: str | None = None, after: str | None = None) -> ConfigError:
        """A ConfigError pointing at `key` (under table header `after`) in this file."""
        line = _line_of(self.text, key, after) if key else None
        return ConfigError(msg, self.path, line)

    def stage_values(self, stage: str | None) -> dict[str, Any]:
        return {**self.train, **(self.stages.get(stage, {}) if stage else {})}


# ----------------------------------------------------------------------- parsing
def load_train_config(path: str | Path) -> TrainJob:
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ConfigError("training config file not found", p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e}", p) from None
    return parse_train_config(text, p)


def parse_train_config(text: str, path: Path) -> TrainJob:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"invalid TOML: {e}", path, int(m.group(1)) if m else None) from None

    def err(msg: str, key: str | None = None, after: str | None = None, header: str | None = None) -> ConfigError:
        line = _line_of(text, key, after) if key else None
        if line is None and header:
            line = _line_of_header(text, header)
        return ConfigError(msg, path, line)

    base = path.parent

    def resolve(v: Any, key: str, after: str | None) -> Path:
        if not isinstance(v, str) or not v.strip():
            raise err(f"`{key}` must be a path string", key, after)
        q = Path(v).expanduser()
        return q if q.is_absolute() else (base / q).resolve()

    def table(name: str, allowed: set[str]) -> dict[str, Any] | None:
        t = raw.get(name)
        if t is None:
            return None
        if not isinstance(t, dict):
            raise err(f"`{name}` must be a table ([{name}])", name)
        for k in t:
            if k not in allowed:
                raise err(f"[{name}]: unknown key {k!r} (expected one of {sorted(allowed)})", k, f"[{name}]", header=name)
        return t

    for k in raw:
        if k not in _TOP:
            raise err(f"unknown table or key {k!r} (expected one of {sorted(_TOP)})", k, header=k)
    model = raw.get("model")
    if model not in MODELS:
        raise err(f"`model` must be one of {list(MODELS)}, got {model!r}", "model")
    if "out" not in raw:
        raise err("`out` (the checkpoint folder) is required")
    out = resolve(raw["out"], "out", None)

    # [data]
    d = table("data", _DATA)
    if d is None or "manifest" not in d:
        raise err("[data]: `manifest` is required", header="data")
    from .data import FORMATS

    fmt = d.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise err(f"[data]: unknown format {fmt!r} (expected one of {list(FORMATS)})", "format", "[data]")
    limit = d.get("limit")
    if limit is not None and not _INT_POS[0](limit):
        raise err("[data]: `limit` must be a positive integer", "limit", "[data]")
    ms = d.get("max_seconds")
    if ms is not None and not _NUM_POS[0](ms):
        raise err("[data]: `max_seconds` must be a positive number", "max_seconds", "[data]")
    data = DataSpec(resolve(d["manifest"], "manifest", "[data]"), fmt, limit, None if ms is None else float(ms))

    # [codec]: valle / mreq only
    c = table("codec", _CODEC_OWN | _CODEC_FIELDS)
    codec = None
    if model == "halle":
        if c is not None:
            raise err("[codec] is not used by model 'halle' (the [tokenizer] carries its codec)", header="codec")
    else:
        if c is None or "kind" not in c:
            raise err(f"model {model!r} needs [codec] with `kind` ({' | '.join(CODEC_KINDS)})", header="codec")
        if c["kind"] not in CODEC_KINDS:
            raise err(f"[codec]: unknown kind {c['kind']!r} (expected one of {list(CODEC_KINDS)})", "kind", "[codec]")
        ov = {k: v for k, v in c.items() if k in _CODEC_FIELDS}
        if ov and c["kind"] not in ("tiny", "teacher_48hz"):
            k0 = next(iter(ov))
            raise err(f"[codec]: {k0!r} only applies to the random codecs (tiny, teacher_48hz)", k0, "[codec]")
        if "ratios" in ov:
            ov["ratios"] = tuple(ov["ratios"]) if isinstance(ov["ratios"], list) else ov["ratios"]
        ckpt = c.get("checkpoint")
        if c["kind"] == "checkpoint" and ckpt is None:
            raise err("[codec]: kind 'checkpoint' needs checkpoint = <a saved Codec folder>", "kind", "[codec]")
        for key, chk in (("seed", _TRAIN_CHECKS["seed"]), ("fit_items", _INT_POS), ("fit_iters", _INT_POS),
                         ("bandwidth", _NUM_POS), ("fit", (lambda v: isinstance(v, bool), "true or false"))):
            if key in c and not chk[0](c[key]):
                raise err(f"[codec]: `{key}` must be {chk[1]}", key, "[codec]")
        codec = CodecSpec(c["kind"], None if ckpt is None else resolve(ckpt, "checkpoint", "[codec]"),
                          float(c.get("bandwidth", 6.0)), int(c.get("seed", 0)), bool(c.get("fit", True)),
                          int(c.get("fit_items", 100)), int(c.get("fit_iters", 10)), ov)
        if ov:
            from halle_bench.baselines.codec import CodecConfig

            try:
                CodecConfig(**ov)
            except (TypeError, ValueError) as e:
                k0 = next(iter(ov))
                raise err(f"[codec]: bad codec setting: {e}", k0, "[codec]") from None

    # [tokenizer], [init]: halle only
    t = table("tokenizer", {"path"})
    i = table("init", {"valle"})
    tokenizer = init_valle = None
    if model != "halle":
        for name, tab in (("tokenizer", t), ("init", i)):
            if tab is not None:
                raise err(f"[{name}] only applies to model 'halle'", header=name)
    else:
        if t is None or "path" not in t:
            raise err("model 'halle' needs [tokenizer] path = <an MReQ tokenizer folder (from model = \"mreq\")>",
                      header="tokenizer")
        tokenizer = resolve(t["path"], "path", "[tokenizer]")
        if i is not None and "valle" in i:
            init_valle = resolve(i["valle"], "valle", "[init]")

    # [model_config]
    mc = table("model_config", {"size"} | _MODEL_KEYS[model]) or {}
    size = mc.get("size", "tiny")
    if size not in SIZES:
        raise err(f"[model_config]: size must be one of {list(SIZES)}, got {size!r}", "size", "[model_config]")
    overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in mc.items() if k != "size"}
    if model in ("valle", "halle"):
        from halle_bench.baselines.transformer import TransformerConfig

        tf = {k: v for k, v in overrides.items() if k in _TF_KEYS}
        try:
            getattr(TransformerConfig, size)(**tf)
        except (TypeError, ValueError) as e:
            raise err(f"[model_config]: {e}", next(iter(tf), "size"), "[model_config]") from None
        for k in ("window", "overlap"):
            if k in overrides and not _INT_NN[0](overrides[k]):
                raise err(f"[model_config]: `{k}` must be a non-negative integer", k, "[model_config]")

    # [train] (+ [train.ar] / [train.nar] for the two-stage models)
    tr = raw.get("train", {})
    if not isinstance(tr, dict):
        raise err("`train` must be a table ([train])", "train")
    allowed = _TRAIN_FOR[model]
    train: dict[str, Any] = {}
    stages: dict[str, dict[str, Any]] = {}
    for k, v in tr.items():
        if isinstance(v, dict) and k in ("ar", "nar") and model != "mreq":
            stages[k] = {}
            for sk, sv in v.items():
                if sk not in _STAGE_KEYS or sk not in allowed:
                    raise err(f"[train.{k}]: unknown key {sk!r} (expected one of {sorted(_STAGE_KEYS & allowed)})",
                              sk, f"[train.{k}]", header=f"train.{k}")
                _check_train(sk, sv, err, f"[train.{k}]")
                stages[k][sk] = sv
            continue
        if k not in allowed:
            hint = " ([train.ar] / [train.nar] apply to valle and halle)" if k in ("ar", "nar") else ""
            raise err(f"[train]: unknown key {k!r} for model {model!r} (expected one of {sorted(allowed)}){hint}",
                      k, "[train]", header="train" if k in ("ar", "nar") else None)
        _check_train(k, v, err, "[train]")
        train[k] = v
    return TrainJob(path, model, out, data, codec, tokenizer, init_valle, size, overrides, train, stages, text)


def _check_train(key: str, value: Any, err, where: str) -> None:
    ok, what = _TRAIN_CHECKS[key]
    if not ok(value):
        raise err(f"{where}: `{key}` must be {what}, got {value!r}", key, where)


# ----------------------------------------------------------------------- running
def run_training(job: TrainJob, reporter=None) -> Path:
    """Train (or resume) and write the checkpoint folder `job.out`; returns it."""
    from .progress import NullReporter
    from .runner import resolve_device

    reporter = reporter or NullReporter()
    device = resolve_device(str(job.train.get("device", "cpu")))
    job = job.with_overrides(device=device) if device != job.train.get("device") else job
    job.out.mkdir(parents=True, exist_ok=True)
    _check_out(job)
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
