"""System adapters: command, wavdir, python, ground-truth; each success and failure mode."""

from __future__ import annotations

import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import requires_espeak
from halle_bench.errors import ConfigError
from halle_bench.systems import SynthesisRequest, build_system, system_kinds

PY = sys.executable

# A tiny "TTS" program: writes a 0.5 s tone to argv[1] and logs every other argument
# (one per line, repr) to the file named by $LOG, so tests see exactly what it got.
FAKE_TTS = textwrap.dedent(
    """
    import os, sys
    import numpy as np, soundfile as sf
    with open(os.environ["FAKE_TTS_LOG"], "a") as f:
        f.write(repr(sys.argv[2:]) + "\\n")
    t = np.arange(12000) / 24000
    sf.write(sys.argv[1], 0.3 * np.sin(2 * np.pi * 440 * t), 24000)
    """
)


@pytest.fixture
def fake_tts(tmp_path, monkeypatch):
    script = tmp_path / "fake_tts.py"
    script.write_text(FAKE_TTS)
    log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_TTS_LOG", str(log))
    return script, log


def cmd(tmp_path, command, **kw):
    return build_system("s", {"name": "s", "kind": "command", "command": command, **kw}, tmp_path)


def req(uid="u1", text="Hello world.", **kw):
    return SynthesisRequest(utt_id=uid, text=text, **kw)


def test_registry_lists_builtin_kinds():
    kinds = system_kinds()
    assert {"command", "wavdir", "python", "ground-truth"} <= set(kinds)


# ------------------------------------------------------------------------ command


@requires_espeak
def test_command_espeak_success_keeps_native_rate(tmp_path):
    s = cmd(tmp_path, ["espeak-ng", "-v", "en-us", "-w", "{out}", "{text}"], timeout=30)
    (r,) = s.synthesize([req(text="This is a test of the command system.", workdir=tmp_path / "work")])
    assert r.ok and r.sample_rate == 22050 and r.audio.dtype == np.float32 and r.audio.ndim == 1
    assert 1.0 < len(r.audio) / r.sample_rate < 5.0
    assert list((tmp_path / "work").iterdir()) == []  # scratch cleaned up


def test_command_placeholders_and_shell_metacharacters_are_literal(tmp_path, fake_tts):
    script, log = fake_tts
    victim = tmp_path / "victim"
    victim.mkdir()
    sentinel = tmp_path / "pwned"
    text = f"hi; rm -rf {victim} && $(touch {sentinel}) `touch {sentinel}` | cat > {sentinel} {{out}}"
    s = cmd(tmp_path, [PY, str(script), "{out}", "{text}", "--prompt={prompt_wav}", "{prompt_text}", "{utt_id}"])
    prompt = tmp_path / "p.wav"
    (r,) = s.synthesize([req("id-1", text, prompt_audio=prompt, prompt_text="it's \"quoted\"")])
    assert r.ok and r.sample_rate == 24000 and len(r.audio) == 12000
    assert victim.is_dir() and not sentinel.exists()
    assert log.read_text().splitlines() == [repr([text, f"--prompt={prompt}", "it's \"quoted\"", "id-1"])]


def test_command_string_template_is_split_once(tmp_path, fake_tts):
    script, log = fake_tts
    a = cmd(tmp_path, f"{PY} {script} {{out}} '{{text}}' --flag")
    b = cmd(tmp_path, [PY, str(script), "{out}", "{text}", "--flag"])
    assert a.argv == b.argv and a.cache_key() == b.cache_key()
    (r,) = a.synthesize([req(text="two words")])
    assert r.ok and log.read_text().strip() == repr(["two words", "--flag"])


def test_command_missing_prompt_text_is_empty_but_missing_prompt_wav_fails(tmp_path, fake_tts):
    script, log = fake_tts
    s = cmd(tmp_path, [PY, str(script), "{out}", "{prompt_text}"])
    assert s.synthesize([req()])[0].ok and log.read_text().strip() == repr([""])
    s = cmd(tmp_path, [PY, str(script), "{out}", "{prompt_wav}"])
    (r,) = s.synthesize([req()])
    assert not r.ok and "no prompt audio" in r.error


def test_command_nonzero_exit_reports_status_and_stderr_tail(tmp_path):
    s = cmd(tmp_path, [PY, "-c", "import sys; sys.stderr.write('x' * 5000 + 'model exploded'); sys.exit(3)", "{out}"])
    (r,) = s.synthesize([req()])
    assert not r.ok and "status 3" in r.error and r.error.endswith("model exploded") and len(r.error) < 800


def test_command_timeout_kills_the_process_group(tmp_path):
    # sh's background child keeps the pipes open: only a group kill returns quickly.
    s = cmd(tmp_path, ["sh", "-c", "sleep 30 & sleep 30; wait", "sh", "{out}"], timeout=0.5)
    t0 = time.monotonic()
    (r,) = s.synthesize([req()])
    assert time.monotonic() - t0 < 10
    assert not r.ok and "timed out after 0.5 s" in r.error


@pytest.mark.parametrize(
    "script, match",
    [
        ("exit 0", "no output file"),
        (': > "$1"', "empty"),
        ('echo "not audio at all" > "$1"', "cannot read audio"),
    ],
)
def test_command_bad_outputs_are_item_errors(tmp_path, script, match):
    s = cmd(tmp_path, ["sh", "-c", script, "sh", "{out}"])
    r1, r2 = s.synthesize([req("a"), req("b")])
    assert not r1.ok and not r2.ok and match in r1.error and r1.utt_id == "a" and r2.utt_id == "b"


def test_command_runs_in_config_folder_and_finds_relative_program(tmp_path):
    prog = tmp_path / "bin" / "tts.sh"
    prog.parent.mkdir()
    prog.write_text('#!/bin/sh\ncp "$PWD/tone.wav" "$1"\n')
    prog.chmod(0o755)
    sf.write(str(tmp_path / "tone.wav"), 0.1 * np.ones(800, dtype=np.float32), 8000)
    s = cmd(tmp_path, ["./bin/tts.sh", "{out}"])
    (r,) = s.synthesize([req()])
    assert r.ok and r.sample_rate == 8000 and len(r.audio) == 800


@pytest.mark.parametrize(
    "table, match",
    [
        ({}, "`command` must be"),
        ({"command": []}, "`command` must be"),
        ({"command": ["echo", 3]}, "`command` must be"),
        ({"command": "echo 'unclosed"}, "cannot be split"),
        ({"command": ["echo", "{text}"]}, "must contain {out}"),
        ({"command": ["echo", "{out}", "{voice}"]}, "unknown placeholder {voice}"),
        ({"command": ["echo", "{out}", "{text!r}"]}, "unknown placeholder"),
        ({"command": ["echo", "{out}", "{text"]}, "braces"),
        ({"command": ["no-such-program-xyz", "{out}"]}, "not found"),
        ({"command": ["echo", "{out}"], "timeout": 0}, "`timeout`"),
        ({"command": ["echo", "{out}"], "timeout": "60"}, "`timeout`"),
        ({"command": ["echo", "{out}"], "timout": 60}, "unknown key 'timout'"),
    ],
)
def test_command_config_errors_name_system_and_key(tmp_path, table, match):
    with pytest.raises(ConfigError, match=match) as ei:
        build_system("tts1", {"kind": "command", **table}, tmp_path)
    assert "system 'tts1'" in str(ei.value)


# ------------------------------------------------------------------------ wavdir


def test_wavdir_reads_by_id_never_by_order(tmp_path):
    d = tmp_path / "gen"
    d.mkdir()
    sf.write(str(d / "b.wav"), 0.2 * np.ones(16000, dtype=np.float32), 16000)
    sf.write(str(d / "a.wav"), 0.1 * np.ones(8000, dtype=np.float32), 8000)
    (d / "c.wav").write_bytes(b"\x00" * 100)
    s = build_system("pre", {"kind": "wavdir", "path": "gen"}, tmp_path)
    a, missing, b, c = s.synthesize([req("a"), req("zz"), req("b"), req("c")])
    assert a.ok and a.sample_rate == 8000 and len(a.audio) == 8000
    assert b.ok and b.sample_rate == 16000 and len(b.audio) == 16000
    assert missing.error == f"no wav for zz in {d}"
    assert not c.ok and "cannot read audio" in c.error
    before = s.item_fingerprint(req("a"))
    sf.write(str(d / "a.wav"), 0.3 * np.ones(8000, dtype=np.float32), 8000)
    assert s.item_fingerprint(req("a")) != before and s.item_fingerprint(req("zz")) == "missing"


def test_wavdir_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="`path`"):
        build_system("pre", {"kind": "wavdir"}, tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        build_system("pre", {"kind": "wavdir", "path": "nope"}, tmp_path)


# ------------------------------------------------------------------------ python


PY_MODULE = textwrap.dedent(
    """
    import numpy as np

    def tts(text, prompt_wav, prompt_text, seed, gain=1.0):
        if text == "boom":
            raise RuntimeError("model exploded")
        if text == "bad":
            return "not a tuple"
        if text == "stereo":
            return np.zeros((2, 100)), 16000
        if text == "badsr":
            return np.zeros(100), 0
        noise = np.random.randn(4000)  # global RNG: seeded by the adapter
        return gain * 0.1 * noise, 16000

    class Engine:
        @staticmethod
        def speak(text, prompt_wav, prompt_text, seed):
            return [[0.1, 0.2, 0.3]], 8000
    """
)


@pytest.fixture
def py_module(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "halle_test_tts_mod.py").write_text(PY_MODULE)
    yield "halle_test_tts_mod"
    sys.modules.pop("halle_test_tts_mod", None)


def test_python_system_success_errors_and_determinism(tmp_path, py_module):
    s = build_system("py", {"kind": "python", "callable": f"{py_module}:tts", "path": "plugins",
                            "kwargs": {"gain": 2.0}}, tmp_path)
    ok1, boom, bad, stereo, badsr = s.synthesize(
        [req("a", seed=5), req("b", "boom"), req("c", "bad"), req("d", "stereo"), req("e", "badsr")])
    assert ok1.ok and ok1.sample_rate == 16000 and ok1.audio.dtype == np.float32 and len(ok1.audio) == 4000
    (ok2,) = s.synthesize([req("a", seed=5)])
    (ok3,) = s.synthesize([req("a", seed=6)])
    np.testing.assert_array_equal(ok1.audio, ok2.audio)
    assert not np.array_equal(ok1.audio, ok3.audio)
    assert "RuntimeError: model exploded" in boom.error
    assert "(wave, sample_rate)" in bad.error
    assert "expected mono" in stereo.error
    assert "sample rate" in badsr.error
    assert s.cache_key()["module_sha256"] != "builtin"
    e = build_system("py2", {"kind": "python", "callable": f"{py_module}:Engine.speak"}, tmp_path)
    (r,) = e.synthesize([req()])
    assert r.ok and r.audio.shape == (3,) and r.sample_rate == 8000


def test_python_module_beside_the_config_imports_without_path(tmp_path):
    """No `path`: the module is imported from the config's folder (base_dir)."""
    (tmp_path / "halle_test_beside_mod.py").write_text(PY_MODULE)
    try:
        s = build_system("py", {"kind": "python", "callable": "halle_test_beside_mod:tts"}, tmp_path)
        (r,) = s.synthesize([req("a", seed=1)])
        assert r.ok and len(r.audio) == 4000
    finally:
        sys.modules.pop("halle_test_beside_mod", None)
    with pytest.raises(ConfigError, match="`path` folder not found"):
        build_system("py", {"kind": "python", "callable": "json:dumps", "path": "nope"}, tmp_path)


@pytest.mark.parametrize(
    "table, match",
    [
        ({"callable": "no_colon"}, "module:function"),
        ({"callable": "halle_no_such_module_xyz:f"}, "cannot import"),
        ({"callable": "json:no_such_function"}, "not a callable"),
        ({"callable": "json:dumps", "kwargs": 3}, "`kwargs`"),
        ({"callable": "json:dumps", "args": []}, "unknown key"),
    ],
)
def test_python_config_errors(tmp_path, table, match):
    with pytest.raises(ConfigError, match=match):
        build_system("py", {"kind": "python", **table}, tmp_path)


# ------------------------------------------------------------------------ ground truth


def test_ground_truth(tmp_path):
    ref = tmp_path / "ref.wav"
    x = (0.1 * np.sin(np.arange(44100) / 10)).astype(np.float32)
    sf.write(str(ref), np.stack([x, x], 1), 44100)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    s = build_system("gt", {"kind": "ground-truth"}, tmp_path)
    ok, none, missing, corrupt = s.synthesize([
        req("a", reference_audio=ref), req("b"), req("c", reference_audio=tmp_path / "nope.wav"),
        req("d", reference_audio=bad)])
    assert ok.ok and ok.sample_rate == 44100 and ok.audio.ndim == 1
    np.testing.assert_allclose(ok.audio, x, atol=1 / 32768)
    assert none.error == "no reference audio for this utterance"
    assert "not found" in missing.error and "cannot read audio" in corrupt.error
    assert s.item_fingerprint(req("a", reference_audio=ref)) != s.item_fingerprint(req("b"))
    with pytest.raises(ConfigError, match="unknown key 'path'"):
        build_system("gt", {"kind": "ground-truth", "path": "x"}, tmp_path)
