"""Built-in system kinds: ``command``, ``wavdir``, ``python`` and ``ground-truth``.

Each is built from its ``[[systems]]`` table as ``Factory(name, config, base_dir)``
(``base_dir`` = the config file's folder) and validates that table in ``__init__``:
unknown keys and bad values are `ConfigError` naming the system and the key, so a
typo stops the run before any work. Per-utterance problems never raise: they come
back as ``SynthesisResult.error``. Output audio is returned at the system's native
sample rate (the runner resamples for scoring); silence detection is the runner's.

All four live in this one module on purpose: they share the small config helpers
below and are each a few dozen lines.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import random
import shlex
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import load_audio, sha256_file
from ..errors import ConfigError
from ..interrupts import track, untrack
from .base import BaseSystem, SynthesisRequest, SynthesisResult, register_system

COMMON_KEYS = frozenset({"name", "kind"})
PLACEHOLDERS = ("text", "out", "prompt_wav", "prompt_text", "utt_id")
STDERR_TAIL = 600  # characters of a failing command's stderr kept in the error
KILL_GRACE_SECONDS = 1.0  # an interrupted command gets SIGTERM, then SIGKILL after this


# ------------------------------------------------------------------------ helpers


def _check_keys(name: str, config: dict[str, Any], allowed: set[str]) -> None:
    for k in config:
        if k not in COMMON_KEYS and k not in allowed:
            raise ConfigError(f"system '{name}': unknown key {k!r} (expected {', '.join(sorted(allowed)) or 'none'})")


def _resolve(base_dir: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (Path(base_dir) / q).resolve()


def _read_output(path: Path, missing: str) -> tuple[np.ndarray, int] | str:
    """Native-rate mono audio, or an error message (missing / empty / unreadable)."""
    if not path.exists():
        return f"{missing}: {path}"
    if path.stat().st_size == 0:
        return f"audio file is empty: {path}"
    try:
        x, sr, _ = load_audio(path, sr=None)
    except Exception as e:  # UtteranceError from load_audio, or anything odd
        return str(e)
    return x, sr


def _result(req: SynthesisRequest, out: tuple[np.ndarray, int] | str) -> SynthesisResult:
    if isinstance(out, str):
        return SynthesisResult(utt_id=req.utt_id, error=out)
    x, sr = out
    return SynthesisResult(utt_id=req.utt_id, audio=x, sample_rate=sr)


def _file_fingerprint(p: Path | None) -> str:
    """sha256 of a file the output is copied from, so a replaced file is re-read."""
    if p is None or not Path(p).is_file():
        return "missing"
    return sha256_file(p)


# ------------------------------------------------------------------------ command


@register_system("command", "an external program: command = [\"prog\", \"-w\", \"{out}\", \"{text}\"], no shell")
class CommandSystem(BaseSystem):
    """Runs a program once per utterance with an argument list built from a template.

    Decisions: the template is split with shlex once, at config time, and each
    argument is filled with ``str.format_map`` (values are never re-parsed, and no
    shell ever sees them, so ``; rm -rf`` or ``$(...)`` in a text is just text).
    Only the five placeholders are allowed, without conversions or format specs.
    ``{out}`` is required. ``{prompt_text}`` with no prompt transcript becomes ""
    (many CLIs then transcribe the prompt themselves); ``{prompt_wav}`` with no prompt
    fails that item. The program runs in the config file's folder, in its own process
    group, so a timeout kills its children too. Each item writes into a fresh
    temporary folder, so a stale file from an earlier run can never be taken for output.

    Timing: a program started per utterance pays its start-up (interpreter, model
    load) every time. `measure_startup` times the program once on a one-word text
    (the fastest of two runs; this includes synthesising that word, so it slightly
    over-estimates pure start-up), and each item's `wall_seconds` is its process time
    minus that start-up (the raw time stays in `info["process_seconds"]`). A timed-out
    item reports the time it ran.
    """

    kind = "command"

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        _check_keys(name, config, {"command", "timeout"})
        cmd = config.get("command")
        if isinstance(cmd, str):
            try:
                cmd = shlex.split(cmd)
            except ValueError as e:
                raise ConfigError(f"system '{name}': `command` cannot be split: {e}") from None
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise ConfigError(f"system '{name}': `command` must be a non-empty list of strings (or one string)")
        used: set[str] = set()
        for arg in cmd:
            try:
                fields = list(string.Formatter().parse(arg))
            except ValueError as e:
                raise ConfigError(f"system '{name}': `command` argument {arg!r}: {e} (write {{{{ }}}} for braces)") from None
            for _, field, spec, conv in fields:
                if field is None:
                    continue
                if field not in PLACEHOLDERS or spec or conv:
                    raise ConfigError(
                        f"system '{name}': `command` has unknown placeholder {{{field}}}; "
                        f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                    )
                used.add(field)
        if "out" not in used:
            raise ConfigError(f"system '{name}': `command` must contain {{out}} (where the program writes the wav)")
        self.uses = used
        prog = cmd[0]
        local = _resolve(base_dir, prog) if os.sep in prog else None
        exe = str(local) if local is not None and local.exists() else shutil.which(prog)
        if exe is None:
            raise ConfigError(f"system '{name}': `command` program {prog!r} not found (not on PATH nor relative to {base_dir})")
        self.argv = [exe, *cmd[1:]]
        timeout = config.get("timeout", 120)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError(f"system '{name}': `timeout` must be a positive number of seconds")
        self.timeout = float(timeout)
        self._program_sha: str | None = None
        self.startup_seconds: float | None = None

    def cache_key(self) -> dict[str, Any]:
        # The program's own bytes: an upgraded binary or script regenerates the audio.
        # Hashed once per run, not per utterance (the runner asks for every item).
        if self._program_sha is None:
            self._program_sha = _file_fingerprint(Path(self.argv[0]))
        return {"kind": self.kind, "command": [Path(self.argv[0]).name, *self.argv[1:]],
                "program_sha256": self._program_sha}

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        return [self._one(r) for r in requests]

    def measure_startup(self, request: SynthesisRequest, runs: int = 2) -> float | None:
        """Seconds one call of the program costs before any real text (see the class
        docstring); None when the probe fails (then nothing is subtracted)."""
        probe = SynthesisRequest(utt_id="startup-probe", text="a", prompt_audio=request.prompt_audio,
                                 prompt_text=request.prompt_text, seed=request.seed, workdir=request.workdir)
        times = []
        for _ in range(runs):
            res = self._one(probe, subtract=False)
            if res.error is not None:
                return None
            times.append(res.info["process_seconds"])
        self.startup_seconds = min(times)
        return self.startup_seconds

    def _one(self, req: SynthesisRequest, subtract: bool = True) -> SynthesisResult:
        if "prompt_wav" in self.uses and req.prompt_audio is None:
            return SynthesisResult(utt_id=req.utt_id, error="no prompt audio for this utterance (the command uses {prompt_wav})")
        # Absolute: the command runs in the config's folder, not ours.
        scratch = Path(req.workdir).resolve() if req.workdir is not None else None
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=scratch))
        try:
            out = tmp / f"{req.utt_id}.wav"
            values = {
                "text": req.text,
                "out": str(out),
                "prompt_wav": str(req.prompt_audio) if req.prompt_audio is not None else "",
                "prompt_text": req.prompt_text or "",
                "utt_id": req.utt_id,
            }
            argv = [self.argv[0]] + [a.format_map(values) for a in self.argv[1:]]
            t0 = time.perf_counter()
            err = self._run(argv)
            elapsed = time.perf_counter() - t0
            startup = self.startup_seconds if subtract and self.startup_seconds is not None else 0.0
            if err is not None:
                res = SynthesisResult(utt_id=req.utt_id, error=err)
            else:
                res = _result(req, _read_output(out, "command wrote no output file"))
            res.wall_seconds = max(0.0, elapsed - startup)
            res.info = {**res.info, "process_seconds": elapsed}
            return res
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _run(self, argv: list[str]) -> str | None:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=str(self.base_dir), start_new_session=True)
        except OSError as e:
            return f"command could not start: {e}"
        track(proc.pid, group=True)
        try:
            _, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)  # the whole group: children hold our pipes
            proc.communicate()
            return f"command timed out after {self.timeout:g} s"
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, a worker told to stop): the program runs in its
            # own session, so no terminal signal reaches it; end its group here, politely
            # first, and let the interrupt go on (the item gets no row: a re-run does it).
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc, signal.SIGKILL)
            raise
        finally:
            untrack(proc.pid)
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:]
            how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with status {proc.returncode}"
            return f"command {how}" + (f": {tail}" if tail else "")
        return None


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------------ wavdir


@register_system("wavdir", "pre-generated audio: <path>/<utterance id>.wav")
class WavDirSystem(BaseSystem):
    """Reads ``<path>/<utt_id>.wav``. Files are matched by id only, never by listing
    order, so a missing file is that item's error rather than a silent shift."""

    kind = "wavdir"
    timed = False  # reads files: no synthesis time to report

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        _check_keys(name, config, {"path"})
        p = config.get("path")
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"system '{name}': `path` (the folder of <utterance id>.wav files) is required")
        self.path = _resolve(base_dir, p)
        if not self.path.is_dir():
            raise ConfigError(f"system '{name}': `path` folder not found: {self.path}")

    def cache_key(self) -> dict[str, Any]:
        # Not the folder's location: each file's sha256 is in the item fingerprint, so
        # a moved folder (or run directory) stays cached and a changed file is re-read.
        return {"kind": self.kind}

    def item_fingerprint(self, req: SynthesisRequest) -> str:
        return _file_fingerprint(self.path / f"{req.utt_id}.wav")

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        out = []
        for r in requests:
            p = self.path / f"{r.utt_id}.wav"
            if not p.exists():
                out.append(SynthesisResult(utt_id=r.utt_id, error=f"no wav for {r.utt_id} in {self.path}"))
            else:
                out.append(_result(r, _read_output(p, "wav file not found")))
        return out


# ------------------------------------------------------------------------ python


@register_system("python", "a Python function: callable = \"module:function\" returning (wave, sr)")
class PythonSystem(BaseSystem):
    """Calls ``fn(text=, prompt_wav=, prompt_text=, seed=, **kwargs)`` -> ``(wave, sr)``.

    The module is imported at config time (an import error stops the run with exit 2,
    not hundreds of failed rows) from ``path`` (a folder, relative to the config's
    folder; default: the config's folder itself), which is prepended to sys.path.
    ``prompt_wav`` is a str or None. Before each call Python's, numpy's and (when
    imported) torch's global RNGs are seeded from ``seed``, so a function that draws
    from them is still deterministic. The cache key holds the module file's sha256.
    """

    kind = "python"

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        _check_keys(name, config, {"callable", "path", "kwargs"})
        spec = config.get("callable")
        if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
            raise ConfigError(f"system '{name}': `callable` must be \"module:function\", got {spec!r}")
        self.kwargs = config.get("kwargs", {})
        if not isinstance(self.kwargs, dict):
            raise ConfigError(f"system '{name}': `kwargs` must be a table")
        # Where the module is imported from: `path` (relative to the config's folder), by
        # default the config's folder itself, so a `tts.py` beside bench.toml just works.
        p = config.get("path", ".")
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"system '{name}': `path` must be a folder path string")
        extra = str(_resolve(base_dir, p))
        if not Path(extra).is_dir():
            raise ConfigError(f"system '{name}': `path` folder not found: {extra}")
        if extra not in sys.path:
            sys.path.insert(0, extra)
        mod_name, attr = spec.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except Exception as e:
            raise ConfigError(f"system '{name}': `callable` cannot import {mod_name!r}: {type(e).__name__}: {e}") from None
        fn: Any = mod
        for part in attr.split("."):
            fn = getattr(fn, part, None)
        if not callable(fn):
            raise ConfigError(f"system '{name}': `callable` {spec!r} is not a callable")
        self.fn = fn
        src = getattr(mod, "__file__", None)
        self._module_sha = _file_fingerprint(Path(src)) if src else "builtin"

    def cache_key(self) -> dict[str, Any]:
        return {"kind": self.kind, "callable": self.config["callable"], "kwargs": self.kwargs,
                "module_sha256": self._module_sha}

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        return [self._one(r) for r in requests]

    def _one(self, req: SynthesisRequest) -> SynthesisResult:
        _seed_everything(req.seed)
        try:
            ret = self.fn(text=req.text, prompt_wav=None if req.prompt_audio is None else str(req.prompt_audio),
                          prompt_text=req.prompt_text, seed=req.seed, **self.kwargs)
        except Exception as e:
            return SynthesisResult(utt_id=req.utt_id, error=f"callable raised {type(e).__name__}: {e}")
        if not isinstance(ret, (tuple, list)) or len(ret) != 2:
            return SynthesisResult(utt_id=req.utt_id, error=f"callable must return (wave, sample_rate), got {type(ret).__name__}")
        wave, sr = ret
        try:
            x = np.asarray(wave.detach().cpu() if hasattr(wave, "detach") else wave, dtype=np.float32)
        except (TypeError, ValueError) as e:
            return SynthesisResult(utt_id=req.utt_id, error=f"callable returned a wave that is not numeric: {e}")
        if x.ndim == 2 and 1 in x.shape:  # (1, n) or (n, 1)
            x = x.reshape(-1)
        if x.ndim != 1:
            return SynthesisResult(utt_id=req.utt_id, error=f"callable returned a wave of shape {x.shape}, expected mono")
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            return SynthesisResult(utt_id=req.utt_id, error=f"callable returned sample rate {sr!r}, expected a positive int")
        return SynthesisResult(utt_id=req.utt_id, audio=x, sample_rate=int(sr))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(int(hashlib.sha256(str(seed).encode()).hexdigest()[:8], 16))
    if "torch" in sys.modules:  # never import torch just for this
        sys.modules["torch"].manual_seed(seed)


# ------------------------------------------------------------------------ ground truth


@register_system("ground-truth", "the reference audio itself (the ceiling row)")
class GroundTruthSystem(BaseSystem):
    """Returns the utterance's reference audio unchanged (native rate, mono).
    With the ``head`` prompt policy the reference still starts with the prompt; the
    similarity scorer leaves that part out (``prompt_from_reference``)."""

    kind = "ground-truth"
    timed = False  # the reference is read, not synthesised: no RTF

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        _check_keys(name, config, set())

    def item_fingerprint(self, req: SynthesisRequest) -> str:
        return _file_fingerprint(req.reference_audio)

    def synthesize(self, requests: list[SynthesisRequest]) -> list[SynthesisResult]:
        out = []
        for r in requests:
            if r.reference_audio is None:
                out.append(SynthesisResult(utt_id=r.utt_id, error="no reference audio for this utterance"))
            else:
                out.append(_result(r, _read_output(Path(r.reference_audio), "reference audio not found")))
        return out
