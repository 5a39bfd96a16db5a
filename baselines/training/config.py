"""The training config of `halle-bench train`: one TOML file parsed into a `TrainJob`.

Every problem is a `ConfigError` with file and line (unknown tables and keys included);
the keys are documented in docs/training.md. `run.run_training` runs the job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from halle_bench.config import _line_of, _line_of_header, parse_toml, read_text_file
from halle_bench.errors import ConfigError

MODELS = ("valle", "mreq", "halle", "codec")
CODEC_KINDS = ("tiny", "teacher_48hz", "encodec_24khz", "checkpoint", "shipped-teacher")
SIZES = ("tiny", "paper")

_TOP = {"model", "out", "data", "codec", "tokenizer", "init", "model_config", "train", "speak", "align"}
# [align]: the training-only alignment prior of the AR (baselines/align_prior.py; off when absent)
_ALIGN = {"weight", "sigma", "heads", "layers"}
_DATA = {"manifest", "format", "limit", "max_seconds", "val_items", "tokens_dir", "extract_batch", "pack"}
# [speak]: the "does it speak" check (valle, halle); asr..batch_size go to the WER scorer;
# budget_s (time budget), top_k / temperature / max_len_ratio (its sampling) are the check's
_SPEAK = {"every", "items", "asr", "normalizer", "beam_size", "language", "batch_size",
          "budget_s", "top_k", "temperature", "max_len_ratio"}
_CODEC_OWN = {"kind", "checkpoint", "bandwidth", "seed", "fit", "fit_items", "fit_iters"}
# CodecConfig fields a random codec may override (tiny / teacher_48hz)
_CODEC_FIELDS = {"sample_rate", "ratios", "n_q", "codebook_size", "dimension", "n_filters",
                 "n_residual_layers", "lstm", "causal"}
_TF_KEYS = {"d_model", "n_heads", "n_layers", "d_ff", "dropout"}
_MODEL_KEYS = {
    "valle": _TF_KEYS,
    "halle": _TF_KEYS | {"window", "overlap"},
    "mreq": {"rates", "latent_dim", "hidden", "preq_n_q", "quant_n_q", "postq_n_q", "codebook_size",
             "ema", "decay", "dead_fraction"},
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
    "max_frames": _INT_NN,
    "bucket_pool": _INT_POS,
    "accum_steps": _INT_POS,
    "num_workers": _INT_NN,
    "ema": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1, "a number in [0, 1)"),
    "val_every": _INT_NN,
    # batches gathered on the device from one tensor of all tokens (resident.py); absent: on CUDA
    "resident": (lambda v: isinstance(v, bool), "true or false"),
}
_TRAIN_FOR = {
    "valle": set(_TRAIN_CHECKS) - {"segment_blocks"},
    "halle": set(_TRAIN_CHECKS) - {"segment_blocks"},
    "mreq": {"steps", "batch_size", "lr", "weight_decay", "grad_clip", "log_every", "save_every", "seed",
             "device", "segment_blocks", "val_every"},
}
_STAGE_KEYS = set(_TRAIN_CHECKS) - {"seed", "device"}  # what [train.ar] / [train.nar] may change


@dataclass(frozen=True)
class DataSpec:
    manifest: Path
    format: str | None = None
    limit: int | None = None
    max_seconds: float | None = None
    val_items: int = 0  # utterances held out for validation (chosen by a hash of their id)
    tokens_dir: Path | None = None  # where token shards live (default: <out>/tokens)
    extract_batch: int = 16  # items per encoder call in token extraction
    pack: Path | None = None  # a token pack (pack.py): train from it instead of manifest + wavs


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
    speak: dict[str, Any] | None = None  # the [speak] table (None: no speak check)
    align: dict[str, Any] | None = None  # the [align] table (None: no alignment prior)

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
    p, text = read_text_file(path, "training config file")
    return parse_train_config(text, p)


def parse_train_config(text: str, path: Path) -> TrainJob:
    raw = parse_toml(text, path)

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

    if raw.get("model") == "codec":  # its own tables: baselines/codec_train.py
        from halle_bench.baselines.codec_train import parse_codec_job

        for k in raw:
            if k not in {"model", "out", "corpus", "teacher", "naive", "mreq"}:
                raise err(f"unknown table or key {k!r} for model 'codec'", k, header=k)
        if "out" not in raw:
            raise err("`out` (the output folder) is required")
        mc = parse_codec_job(raw, lambda m, k, a, h: err(m, k, a, header=h))
        return TrainJob(path, "codec", resolve(raw["out"], "out", None), DataSpec(path), model_config=mc, text=text)
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
    if d is None or ("manifest" not in d and "pack" not in d):
        raise err("[data]: `manifest` (or a token `pack`) is required", header="data")
    pack = resolve(d["pack"], "pack", "[data]") if "pack" in d else None
    if pack is not None and model not in ("valle", "halle"):
        raise err(f"[data]: a token `pack` feeds valle / halle trainings, not {model!r}", "pack", "[data]")
    from halle_bench.data import FORMATS

    fmt = d.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise err(f"[data]: unknown format {fmt!r} (expected one of {list(FORMATS)})", "format", "[data]")
    limit = d.get("limit")
    if limit is not None and not _INT_POS[0](limit):
        raise err("[data]: `limit` must be a positive integer", "limit", "[data]")
    ms = d.get("max_seconds")
    if ms is not None and not _NUM_POS[0](ms):
        raise err("[data]: `max_seconds` must be a positive number", "max_seconds", "[data]")
    for key in ("val_items", "extract_batch"):
        if key in d and not (_INT_NN if key == "val_items" else _INT_POS)[0](d[key]):
            raise err(f"[data]: `{key}` must be a {'non-negative' if key == 'val_items' else 'positive'} integer",
                      key, "[data]")
    data = DataSpec(resolve(d["manifest"], "manifest", "[data]") if "manifest" in d else pack / "items.jsonl", fmt, limit, None if ms is None else float(ms),
                    int(d.get("val_items", 0)),
                    resolve(d["tokens_dir"], "tokens_dir", "[data]") if "tokens_dir" in d else None,
                    int(d.get("extract_batch", 16)), pack)

    # [speak]: valle / halle
    sp = table("speak", _SPEAK)
    if sp is not None:
        if model == "mreq":
            raise err("[speak] applies to models 'valle' and 'halle' (an MReQ tokenizer does not speak)", header="speak")
        for key in ("every", "items", "beam_size", "batch_size"):
            if key in sp and not (_INT_NN if key == "every" else _INT_POS)[0](sp[key]):
                raise err(f"[speak]: `{key}` must be a {'non-negative' if key == 'every' else 'positive'} integer",
                          key, "[speak]")
        for key in ("asr", "normalizer", "language"):
            if key in sp and not (isinstance(sp[key], str) and sp[key]):
                raise err(f"[speak]: `{key}` must be a non-empty string", key, "[speak]")
        for key, chk in (("budget_s", _NUM_POS), ("top_k", _INT_NN), ("temperature", _NUM_POS),
                         ("max_len_ratio", _NUM_POS)):
            if key in sp and not chk[0](sp[key]):
                raise err(f"[speak]: `{key}` must be {chk[1]}, got {sp[key]!r}", key, "[speak]")
        if data.val_items < 2:
            raise err("[speak] needs [data] val_items >= 2 (held-out texts and their voice prompts)", header="speak")

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
        if t["path"] in ("shipped-mreq",):
            from halle_bench.errors import HalleBenchError

            from .shipped import shipped_dir

            try:
                tokenizer = shipped_dir(t["path"])
            except (HalleBenchError, OSError) as e:
                raise err(f"[tokenizer]: {e}", "path", "[tokenizer]") from None
        else:
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
    align = _parse_align(table("align", _ALIGN), model, err)
    return TrainJob(path, model, out, data, codec, tokenizer, init_valle, size, overrides, train, stages, text,
                    None if sp is None else dict(sp), align)


def _parse_align(al: dict[str, Any] | None, model: str, err) -> dict[str, Any] | None:
    """[align] -> AlignPrior keyword arguments (checked with file and line)."""
    if al is None:
        return None
    if model not in ("valle", "halle"):
        raise err("[align] applies to models 'valle' and 'halle' (the AR's attention)", header="align")
    for key, chk in (("weight", _NUM_NN), ("sigma", _NUM_POS), ("heads", _INT_POS)):
        if key in al and not chk[0](al[key]):
            raise err(f"[align]: `{key}` must be {chk[1]}, got {al[key]!r}", key, "[align]")
    layers = al.get("layers", [1])
    if not (isinstance(layers, list) and layers and all(_INT_NN[0](i) for i in layers)):
        raise err("[align]: `layers` must be a non-empty list of layer indices (0 = first)", "layers", "[align]")
    return {**{k: v for k, v in al.items() if k != "layers"}, "layers": tuple(layers)}


def _check_train(key: str, value: Any, err, where: str) -> None:
    ok, what = _TRAIN_CHECKS[key]
    if not ok(value):
        raise err(f"{where}: `{key}` must be {what}, got {value!r}", key, where)


# ----------------------------------------------------------------------- running
