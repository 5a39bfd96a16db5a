"""The run configuration: a TOML file parsed into frozen dataclasses.

Every problem is a `ConfigError` with the file and, where it can be found, the line:
tomllib reports syntax errors with a line; for a bad value we locate the line of the
key in the text (`_line_of`). Relative paths resolve against the config file's folder.
Unknown top-level tables and keys are errors (a typo must not silently fall back to
a default).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_BUCKETS = (3.0, 10.0, 30.0, 60.0, 90.0, 180.0)
PROMPT_POLICIES = ("given", "cross-utterance", "head")
FORMATS = ("jsonl", "csv", "seed-tts", "librispeech-pc", "audiofolder", "librispeech", "libritts", "librispeech-long")

_TOP_KEYS = {"dataset", "systems", "metrics", "run"}
_DATASET_KEYS = {"manifest", "format", "buckets", "prompt", "prompt_seconds", "limit", "name", "min_prompt_seconds",
                 "validate"}
_RUN_KEYS = {"seed", "device", "max_failed_fraction", "n_boot", "warmup", "plugins"}


@dataclass(frozen=True)
class DatasetConfig:
    manifest: Path
    format: str | None = None
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    prompt: str = "given"
    prompt_seconds: float = 3.0
    limit: int | None = None
    name: str = ""
    # Data checks before any work (data/validate.py): prompts shorter than this fail the
    # run with exit 2; `validate = false` turns the checks off (problems then become
    # failed rows, as before the checks existed).
    min_prompt_seconds: float = 1.0
    validate: bool = True


@dataclass(frozen=True)
class SystemConfig:
    name: str
    kind: str
    table: dict[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    device: str = "cpu"
    max_failed_fraction: float = 0.0
    n_boot: int = 1000  # bootstrap resamples for the leaderboard's confidence intervals
    warmup: bool = True  # one untimed synthesis per system before timing RTF
    # Modules imported before systems and scorers are built, so that they can
    # register their own kinds (`@register_system`, `@register_scorer`).
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    path: Path
    dataset: DatasetConfig
    systems: tuple[SystemConfig, ...]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: RunConfig = field(default_factory=RunConfig)
    text: str = ""

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, as written to <out>/config.toml."""
        ds = self.dataset
        d: dict[str, Any] = {
            "dataset": {
                "manifest": str(ds.manifest),
                "buckets": list(ds.buckets),
                "prompt": ds.prompt,
                "prompt_seconds": ds.prompt_seconds,
                "min_prompt_seconds": ds.min_prompt_seconds,
                "validate": ds.validate,
            },
            "systems": [dict(s.table) for s in self.systems],
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
            "run": {
                "seed": self.run.seed,
                "device": self.run.device,
                "max_failed_fraction": self.run.max_failed_fraction,
                "n_boot": self.run.n_boot,
                "warmup": self.run.warmup,
                "plugins": list(self.run.plugins),
            },
        }
        if ds.format:
            d["dataset"]["format"] = ds.format
        if ds.limit is not None:
            d["dataset"]["limit"] = ds.limit
        if ds.name:
            d["dataset"]["name"] = ds.name
        return d


def _line_of(text: str, key: str, after: str | None = None) -> int | None:
    """1-based line of `key = ...` (first after the line matching `after`), or None."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        for i, ln in enumerate(lines):
            if ln.strip().startswith(after):
                start = i
                break
    pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start, len(lines)):
        if pat.match(lines[i]):
            return i + 1
    return None


def _nth_line(text: str, header: str, n: int) -> int | None:
    """Line of the n-th (0-based) `[[header]]`."""
    seen = -1
    for i, ln in enumerate(text.splitlines()):
        if ln.strip() == f"[[{header}]]":
            seen += 1
            if seen == n:
                return i + 1
    return None


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """TOML text -> dict; a syntax error is a ConfigError with the file and its line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"invalid TOML: {e}", path, int(m.group(1)) if m else None) from None


def read_text_file(path: str | Path, what: str = "config file") -> tuple[Path, str]:
    """(resolved path, text) of a config file; a missing or unreadable file is a ConfigError."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ConfigError(f"{what} not found", p)
    try:
        return p, p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what}: {e}", p) from None


def parse_config(text: str, path: Path) -> Config:
    raw = parse_toml(text, path)

    def err(msg: str, key: str | None = None, after: str | None = None, line: int | None = None) -> ConfigError:
        if line is None and key is not None:
            line = _line_of(text, key, after)
        return ConfigError(msg, path, line)

    for k in raw:
        if k not in _TOP_KEYS:
            raise err(f"unknown table or key {k!r} (expected one of {sorted(_TOP_KEYS)})", k, line=_line_of(text, k) or _line_of_header(text, k))
    base = path.parent

    # [dataset]
    ds_raw = raw.get("dataset")
    if not isinstance(ds_raw, dict):
        raise err("missing [dataset] table with a `manifest` key")
    for k in ds_raw:
        if k not in _DATASET_KEYS:
            raise err(f"[dataset]: unknown key {k!r} (expected one of {sorted(_DATASET_KEYS)})", k, "[dataset]")
    if "manifest" not in ds_raw or not isinstance(ds_raw["manifest"], str):
        raise err("[dataset]: `manifest` (a path string) is required", "manifest", "[dataset]", line=_line_of_header(text, "dataset"))
    manifest = Path(ds_raw["manifest"]).expanduser()
    if not manifest.is_absolute():
        manifest = (base / manifest).resolve()
    fmt = ds_raw.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise err(f"[dataset]: unknown format {fmt!r} (expected one of {list(FORMATS)})", "format", "[dataset]")
    buckets = ds_raw.get("buckets", list(DEFAULT_BUCKETS))
    if (
        not isinstance(buckets, list)
        or len(buckets) < 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in buckets)
        or any(b2 <= b1 for b1, b2 in zip(buckets, buckets[1:]))
        or buckets[0] < 0
    ):
        raise err("[dataset]: `buckets` must be a strictly increasing list of >= 2 non-negative numbers (seconds)", "buckets", "[dataset]")
    prompt = ds_raw.get("prompt", "given")
    if prompt not in PROMPT_POLICIES:
        raise err(f"[dataset]: unknown prompt policy {prompt!r} (expected one of {list(PROMPT_POLICIES)})", "prompt", "[dataset]")
    ps = ds_raw.get("prompt_seconds", 3.0)
    if not isinstance(ps, (int, float)) or isinstance(ps, bool) or ps <= 0:
        raise err("[dataset]: `prompt_seconds` must be a positive number", "prompt_seconds", "[dataset]")
    mps = ds_raw.get("min_prompt_seconds", 1.0)
    if not isinstance(mps, (int, float)) or isinstance(mps, bool) or mps < 0:
        raise err("[dataset]: `min_prompt_seconds` must be a number >= 0", "min_prompt_seconds", "[dataset]")
    validate = ds_raw.get("validate", True)
    if not isinstance(validate, bool):
        raise err("[dataset]: `validate` must be true or false", "validate", "[dataset]")
    limit = ds_raw.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
        raise err("[dataset]: `limit` must be a positive integer", "limit", "[dataset]")
    dataset = DatasetConfig(
        manifest=manifest,
        format=fmt,
        buckets=tuple(float(b) for b in buckets),
        prompt=prompt,
        prompt_seconds=float(ps),
        limit=limit,
        name=str(ds_raw.get("name", "")),
        min_prompt_seconds=float(mps),
        validate=validate,
    )

    # [[systems]]
    sys_raw = raw.get("systems")
    if not isinstance(sys_raw, list) or not sys_raw:
        raise err("at least one [[systems]] table is required")
    systems: list[SystemConfig] = []
    names: dict[str, int] = {}
    for i, s in enumerate(sys_raw):
        line = _nth_line(text, "systems", i)
        if not isinstance(s, dict):
            raise err("[[systems]] entries must be tables", line=line)
        name, kind = s.get("name"), s.get("kind")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name or ""):
            raise err(f"[[systems]] #{i + 1}: `name` must be a non-empty string of letters, digits, . _ + -", line=line)
        if not isinstance(kind, str):
            raise err(f"system '{name}': `kind` is required", line=line)
        if name in names:
            raise err(f"system name '{name}' is used twice (entries #{names[name] + 1} and #{i + 1})", line=line)
        names[name] = i
        table = dict(s)
        # Relative paths in a system table resolve against the config's folder; the
        # adapters get base_dir too, this only normalises the common keys.
        for key in ("path", "checkpoint"):
            if isinstance(table.get(key), str) and not Path(table[key]).expanduser().is_absolute():
                table[key] = str((base / Path(table[key]).expanduser()).resolve())
        systems.append(SystemConfig(name=name, kind=kind, table=table, line=line))

    # [metrics]
    met_raw = raw.get("metrics", {"wer": {}, "sim": {}, "quality": {}})
    if not isinstance(met_raw, dict):
        raise err("[metrics] must be a table", "metrics")
    metrics: dict[str, dict[str, Any]] = {}
    for k, v in met_raw.items():
        if v is True:
            v = {}
        if v is False:
            continue
        if not isinstance(v, dict):
            raise err(f"[metrics]: `{k}` must be a table (e.g. {k} = {{ ... }}), true or false", k, "[metrics]")
        metrics[k] = dict(v)

    # [run]
    run_raw = raw.get("run", {})
    if not isinstance(run_raw, dict):
        raise err("[run] must be a table", "run")
    for k in run_raw:
        if k not in _RUN_KEYS:
            raise err(f"[run]: unknown key {k!r} (expected one of {sorted(_RUN_KEYS)})", k, "[run]")
    seed = run_raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise err("[run]: `seed` must be an integer", "seed", "[run]")
    device = run_raw.get("device", "cpu")
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|auto", device):
        raise err("[run]: `device` must be cpu, cuda, cuda:N or auto", "device", "[run]")
    mff = run_raw.get("max_failed_fraction", 0.0)
    if not isinstance(mff, (int, float)) or isinstance(mff, bool) or not 0.0 <= mff <= 1.0:
        raise err("[run]: `max_failed_fraction` must be a number in [0, 1]", "max_failed_fraction", "[run]")
    n_boot = run_raw.get("n_boot", 1000)
    if not isinstance(n_boot, int) or n_boot < 0:
        raise err("[run]: `n_boot` must be a non-negative integer", "n_boot", "[run]")
    plugins = run_raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(x, str) and x for x in plugins):
        raise err("[run]: `plugins` must be a list of module names", "plugins", "[run]")
    run = RunConfig(seed=seed, device=device, max_failed_fraction=float(mff), n_boot=n_boot,
                    warmup=bool(run_raw.get("warmup", True)), plugins=tuple(plugins))
    return Config(path=path, dataset=dataset, systems=tuple(systems), metrics=metrics, run=run, text=text)


def _line_of_header(text: str, name: str) -> int | None:
    for i, ln in enumerate(text.splitlines()):
        if ln.strip() in (f"[{name}]", f"[[{name}]]"):
            return i + 1
    return None


def load_config(path: str | Path) -> Config:
    p, text = read_text_file(path)
    return parse_config(text, p)
