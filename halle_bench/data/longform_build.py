"""`halle-bench datasets build-longform SRC OUT`: a long-form test set written to disk.

Reads a corpus folder (or any manifest whose rows name a speaker and audio), checks it
(`validate.find_problems`: every file decodes, every text has words; all problems at
once, exit 2), plans segments (`longform.plan_longform`) and writes:

- ``OUT/manifest.jsonl``: one line per segment, in bucket order then id: ``id, text,
  audio, duration, speaker, chapter, bucket, prompt_audio, prompt_text, prompt_cut,
  sources, prompt_source`` (paths relative to OUT, so the folder can be moved);
- ``OUT/wavs/<id>.wav`` (the joined sources) and ``OUT/wavs/prompts/<id>.wav``, mono
  16-bit at the corpus's own rate (a source at another rate is resampled to the
  segment's first);
- ``OUT/config.toml``: ready for ``halle-bench run OUT/config.toml`` (ground truth,
  WER and speaker similarity; add systems);
- ``OUT/recipe.json``: the parameters, the seed, per-bucket counts and the sha256 of
  every source file used, so a set can be rebuilt and checked.

Same inputs, parameters and seed give the same bytes in every file (no timestamps, no
absolute output paths; tested). OUT must be empty, absent, or a previous build (its
files are replaced; anything else there is refused rather than mixed in).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import load_audio, resample, save_audio, sha256_file
from ..errors import ConfigError
from ..progress import NullReporter, Reporter
from .buckets import DEFAULT_BUCKETS, _fmt, validate_edges
from .longform import PromptChoice, Segment, Source, plan_longform
from .manifests import detect_format, read_manifest
from .pauses import cut_at_pause
from .validate import DataError, DataProblem, find_problems

BUILD_FILES = ("manifest.jsonl", "config.toml", "recipe.json", "wavs")
PROMPT_SLACK_S = 1.0


@dataclass(frozen=True)
class BucketRow:
    bucket: str
    n: int
    seconds: float
    min_s: float
    max_s: float
    candidates: int


@dataclass(frozen=True)
class BuildResult:
    out: Path
    rows: list[BucketRow]
    manifest: Path
    config: Path
    recipe: Path


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError("output exists and is not a folder", out)
    if out.exists():
        extra = sorted(p.name for p in out.iterdir() if p.name not in BUILD_FILES)
        if extra:
            raise ConfigError(f"output folder holds files that are not from a build ({', '.join(extra[:5])}); "
                              "give an empty or new folder", out)
        if (out / "wavs").exists():
            shutil.rmtree(out / "wavs")
    (out / "wavs" / "prompts").mkdir(parents=True, exist_ok=True)


def _sources(src: Path, fmt: str | None, reporter: Reporter) -> tuple[list[Source], dict[str, Path], str]:
    fmt = fmt or detect_format(src)
    utts = read_manifest(src, fmt)
    problems = [DataProblem(u.source or str(src), u.id, "no speaker: a long-form segment joins one speaker's utterances")
                for u in utts if not u.speaker]
    problems += [DataProblem(u.source or str(src), u.id, "no audio: nothing to join") for u in utts if u.audio is None]
    with reporter.stage("check sources", len(utts)) as st:
        problems += find_problems(utts, min_prompt_seconds=0.0, progress=st.advance)
    if problems:
        raise DataError(problems, src)
    sources = [Source(u.id, u.text, str(u.speaker), str(u.extra.get("chapter", "")), float(u.duration or 0.0))
               for u in utts]
    return sources, {u.id: Path(u.audio) for u in utts if u.audio is not None}, fmt


def _join(seg: Segment, paths: dict[str, Path]) -> tuple[np.ndarray, int]:
    parts, sr = [], None
    for s in seg.sources:
        x, file_sr, _ = load_audio(paths[s.id], sr=None)
        if sr is None:
            sr = file_sr
        parts.append(resample(x, file_sr, sr))
    return np.concatenate(parts), int(sr)  # type: ignore[arg-type]


def _prompt(choice: PromptChoice, paths: dict[str, Path], seconds: float,
            min_seconds: float) -> tuple[np.ndarray, int, float | None]:
    x, sr, _ = load_audio(paths[choice.source.id], sr=None)
    if choice.whole:
        return x, sr, None
    end = cut_at_pause(x, sr, seconds, PROMPT_SLACK_S, min_seconds)
    return x[:end], sr, end / sr


def _config_text(name: str, edges: Sequence[float], min_prompt_seconds: float) -> str:
    buckets = ", ".join(_fmt(e) for e in edges)
    return f"""# Built by `halle-bench datasets build-longform` (see recipe.json). Run with
#   halle-bench run path/to/{name}/config.toml --out runs/{name}
# and add your systems below the ground truth.
[dataset]
name = "{name}"
manifest = "manifest.jsonl"
format = "jsonl"
buckets = [{buckets}]
prompt = "given"
min_prompt_seconds = {min_prompt_seconds:g}

[[systems]]
name = "ground-truth"
kind = "ground-truth"

[metrics]
wer = {{ asr = "whisper-base", normalizer = "whisper-en" }}
sim = {{ model = "resemblyzer" }}

[run]
seed = 0
device = "auto"
"""


def build_longform(
    src: str | Path,
    out: str | Path,
    edges: Sequence[float] = DEFAULT_BUCKETS,
    per_bucket: int | None = None,
    seed: int = 0,
    prompt_seconds: float = 3.0,
    fmt: str | None = None,
    min_prompt_seconds: float = 1.0,
    reporter: Reporter | None = None,
) -> BuildResult:
    """Build the set (see the module docstring); ConfigError/DataError (exit 2) on bad input."""
    reporter = reporter or NullReporter()
    edges = validate_edges(edges)
    if per_bucket is not None and per_bucket < 1:
        raise ConfigError(f"--per-bucket must be >= 1, got {per_bucket}")
    if not prompt_seconds > 0 or prompt_seconds < min_prompt_seconds:
        raise ConfigError(f"--prompt-seconds must be > 0 and >= the minimum prompt length ({min_prompt_seconds:g} s), "
                          f"got {prompt_seconds:g}")
    src_path, out = Path(src).expanduser(), Path(out).expanduser()
    sources, paths, fmt = _sources(src_path, fmt, reporter)
    plan = plan_longform(sources, edges, per_bucket, seed, prompt_seconds, PROMPT_SLACK_S, min_prompt_seconds)
    if not plan.segments:
        raise ConfigError("no segment fits any bucket: the chapters are too short for these buckets "
                          f"(candidates per bucket: {plan.candidates})", src_path)
    _prepare_out(out)
    label_order = {f"{_fmt(a)}-{_fmt(b)}": k for k, (a, b) in enumerate(zip(edges, edges[1:]))}
    chosen = sorted(plan.segments, key=lambda sp: (label_order[sp[0].bucket], sp[0].id))
    used: set[str] = set()
    lines = []
    with reporter.stage("write segments", len(chosen)) as st:
        for seg, choice in chosen:
            x, sr = _join(seg, paths)
            save_audio(out / "wavs" / f"{seg.id}.wav", x, sr)
            p, psr, cut = _prompt(choice, paths, prompt_seconds, min_prompt_seconds)
            save_audio(out / "wavs" / "prompts" / f"{seg.id}.wav", p, psr)
            used.update(s.id for s in seg.sources)
            used.add(choice.source.id)
            lines.append(json.dumps({
                "id": seg.id, "text": seg.text, "audio": f"wavs/{seg.id}.wav", "duration": round(x.size / sr, 6),
                "speaker": seg.speaker, "chapter": seg.sources[0].chapter, "bucket": seg.bucket,
                "prompt_audio": f"wavs/prompts/{seg.id}.wav",
                "prompt_text": choice.source.text if choice.whole else None,
                "prompt_cut": None if cut is None else [0.0, round(cut, 6)],
                "sources": [s.id for s in seg.sources], "prompt_source": choice.source.id,
            }, ensure_ascii=False))
            st.advance()
    (out / "manifest.jsonl").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    (out / "config.toml").write_text(_config_text(out.name or "longform", edges, min_prompt_seconds), encoding="utf-8")
    rows = _table(chosen, plan.candidates, label_order)
    for r in rows:
        if r.n == 0 or (per_bucket is not None and r.n < per_bucket):
            reporter.log(f"bucket {r.bucket}: {r.n} segment(s){f' of the {per_bucket} asked' if per_bucket else ''}: "
                         f"the chapters allow no more ({plan.too_long.get(r.bucket, 0)} utterances longer than the "
                         f"bucket, {plan.no_prompt.get(r.bucket, 0)} segments without a prompt)")
    hashes = {uid: sha256_file(paths[uid]) for uid in sorted(used)}
    from .. import __version__  # here: halle_bench/__init__ imports this package

    recipe: dict[str, Any] = {
        "tool": "halle-bench datasets build-longform", "halle_bench": __version__, "src": str(src),
        "format": fmt, "seed": seed, "buckets": [float(e) for e in edges], "per_bucket": per_bucket,
        "prompt_seconds": prompt_seconds, "prompt_slack_seconds": PROMPT_SLACK_S,
        "min_prompt_seconds": min_prompt_seconds, "n_source_utterances": len(sources),
        "buckets_built": {r.bucket: {"n": r.n, "seconds": round(r.seconds, 3), "candidates": r.candidates,
                                     "too_long": plan.too_long.get(r.bucket, 0),
                                     "no_prompt": plan.no_prompt.get(r.bucket, 0)} for r in rows},
        "source_sha256": hashes,
    }
    (out / "recipe.json").write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return BuildResult(out, rows, out / "manifest.jsonl", out / "config.toml", out / "recipe.json")


def _table(chosen: list[tuple[Segment, PromptChoice]], candidates: dict[str, int],
           label_order: dict[str, int]) -> list[BucketRow]:
    rows = []
    for label in sorted(candidates, key=label_order.__getitem__):
        d = [s.duration for s, _ in chosen if s.bucket == label]
        rows.append(BucketRow(label, len(d), float(sum(d)), min(d, default=0.0), max(d, default=0.0), candidates[label]))
    return rows


__all__ = ["BucketRow", "BuildResult", "build_longform"]
