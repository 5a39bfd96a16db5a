"""Pieces shared by the per-model trainers of run.py: the stage runner (progress bar, metrics,
validation), the speak hook, the validation split and paths."""

from __future__ import annotations

from pathlib import Path

from halle_bench.errors import ConfigError, UtteranceError

from .config import TrainJob


def tokens_root(job: TrainJob) -> Path:
    return job.data.tokens_dir or job.out / "tokens"


def speak_hook(job: TrainJob, val_utts, sample_rate: int, synth_of, steps: int):
    """on_eval for the last stage: the "does it speak" check every `[speak] every` steps and at the end."""
    if job.speak is None:
        return None
    from halle_bench.audio import load_audio

    from .speak import SpeakCheck, pair_prompts

    held = []
    for u in val_utts:
        try:
            x, sr, _ = load_audio(u.audio, sr=sample_rate)
            held.append((u.id, u.text, x, sr))
        except (UtteranceError, OSError) as e:
            raise ConfigError(f"[speak]: held-out utterance {u.id}: {e}", job.data.manifest) from None
    cfg = {k: v for k, v in job.speak.items() if k not in ("every", "items")}
    cfg.setdefault("asr", "whisper-base")
    check = SpeakCheck(pair_prompts(held, int(job.speak.get("items", 4))), cfg,
                       "cuda" if str(job.train.get("device", "cpu")).startswith("cuda") else "cpu",
                       int(job.train.get("seed", 0)))
    every = int(job.speak.get("every", 0))

    def on_eval(step: int, model) -> dict:
        if step != steps and not (every and step % every == 0):
            return {}
        return check(synth_of())

    return on_eval


def stage(job: TrainJob, reporter, name: str, model, examples, val, cfg, folder: Path, model_config, on_eval=None):
    from halle_bench.baselines.train import train

    with bar(reporter, name, cfg.steps) as progress:
        return train(model, examples, cfg, folder, model_config, on_log=logger(reporter, name),
                     val_examples=val or None, on_eval=on_eval, metrics_path=job.out / "metrics.jsonl",
                     stage=name.split()[-1], progress=progress)


def bar(reporter, name: str, total: int):
    """The reporter's progress bar (a reporter with only `log` gets none)."""
    import contextlib

    if hasattr(reporter, "stage"):
        return reporter.stage(name, total)

    class _No:
        def advance(self, n: int = 1) -> None:
            pass

    return contextlib.nullcontext(_No())


def finish_metrics(job: TrainJob) -> None:
    from . import dist as D
    from .metrics import finish

    if D.current().is_main and (job.out / "metrics.jsonl").exists():
        finish(job.out / "metrics.jsonl", f"{job.model} ({job.size}): {job.out.name}")


def split(job: TrainJob, utts, split_items, seed: int):
    try:
        return split_items(utts, job.data.val_items, seed)
    except ValueError as e:
        raise job.error(f"[data]: {e}", "val_items", "[data]") from None


def logger(reporter, what: str):
    def log(row: dict[str, float]) -> None:
        keys = ("loss", "accuracy", "lr", "fld", "nac", "val_loss", "val_accuracy", "val_top10", "val_shuffle_gap",
                "val_wer", "val_cer", "speak_done")
        reporter.log(f"[{what}] step {int(row['step'])}" + "".join(f" {k} {row[k]:.4g}" for k in keys if k in row))

    return log
