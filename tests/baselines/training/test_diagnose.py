"""`python -m halle_bench.baselines.training.diagnose CKPT MANIFEST` on tiny VALL-E and HALL-E
checkpoints: every stage's loss, shuffle gap and (AR) top-10, the speak check's WER / CER,
and exit status 2 for a bad manifest or checkpoint."""

import json
import sys
from pathlib import Path

import pytest

from halle_bench.audio import save_audio
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.training.diagnose import main
from halle_bench.baselines.valle import VALLE

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_halle import SR as HSR, HALLE, tiny_tokenizer  # noqa: E402

TEXTS = {"a": "The quick brown fox jumps.", "b": "Hello there.", "c": "One two three four five."}


def _manifest(d: Path, speech, sr: int) -> Path:
    with open(d / "m.jsonl", "w") as f:
        for uid, text in TEXTS.items():
            save_audio(d / f"{uid}.wav", speech(text, sr=sr), sr)
            f.write(json.dumps({"id": uid, "text": text, "audio": f"{uid}.wav"}) + "\n")
    f = d / "m.jsonl"
    return f


def test_valle_numbers_printed_and_written(tmp_path, speech, capsys):
    ck = tmp_path / "valle"
    VALLE.build(Codec.from_config(CodecConfig.tiny(), seed=0), size="tiny").save(ck)
    m = _manifest(tmp_path, speech, 16000)
    assert main([str(ck), str(m), "--asr", "whisper-tiny.en", "--items", "1", "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["kind"] == "valle" and d["items"] == 3 and set(d["stages"]) == {"ar", "nar"}
    ar, nar = d["stages"]["ar"], d["stages"]["nar"]
    assert 0 <= ar["val_top10"] <= 1 and "val_top10" not in nar
    assert all(abs(s["val_shuffle_gap"]) < 0.5 for s in (ar, nar))  # an untrained model reads nothing
    s = d["speak"]
    assert s["speak_done"] == 1 and s["top_k"] == 1 and s["val_wer"] >= 0.5 and 0 < s["val_cer"]
    assert "shuffled" in out and "speak (top-k 1" in out and "CER" in out


def test_halle_teacher_forced(tmp_path, speech, capsys):
    ck = tmp_path / "halle"
    HALLE.build(tiny_tokenizer(wav=speech(TEXTS["a"], sr=HSR)), size="tiny", window=96, overlap=24).save(ck)
    m = _manifest(tmp_path, speech, HSR)
    assert main([str(ck), str(m), "--no-speak", "--json", str(tmp_path / "d.json")]) == 0
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["kind"] == "halle" and "speak" not in d
    assert "val_top10" in d["stages"]["ar"] and "val_shuffle_gap" in d["stages"]["nar"]
    assert "halle checkpoint" in capsys.readouterr().out


def test_bad_inputs_exit_2(tmp_path, capsys):
    (tmp_path / "m.jsonl").write_text('{"id": "a", "text": "x", "audio": "a.wav"}\nnot json\n')
    assert main([str(tmp_path / "nope"), str(tmp_path / "m.jsonl"), "--no-speak"]) == 2
    assert "nope" in capsys.readouterr().err


def test_a_training_config_diagnoses_the_stages_checkpointed_so_far(tmp_path, speech, capsys):
    import shutil

    from halle_bench.baselines.training import load_train_config, run_training
    from halle_bench.baselines.training.diagnose import diagnose

    m = _manifest(tmp_path, speech, 16000)
    cfg = tmp_path / "valle.toml"
    cfg.write_text('model = "valle"\nout = "ckpt"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\nfit_iters = 2\n'
                   '[model_config]\nsize = "tiny"\nd_model = 32\nn_heads = 2\nn_layers = 1\nd_ff = 64\n'
                   '[train]\nsteps = 2\nbatch_size = 3\nlr = 1e-3\nwarmup = 1\n')
    out = run_training(load_train_config(cfg))
    done = diagnose(out, m, speak=False)  # the finished folder (no EMA: the last raw weights)
    running = diagnose(cfg, m, speak=False)  # the same weights, read from train/*/last
    assert running["trained_stages"] == ["ar", "nar"] and running["stages"] == done["stages"]
    shutil.rmtree(out / "train" / "nar")  # as if the NAR stage had not started
    assert main([str(cfg), str(m), "--json", str(tmp_path / "d.json")]) == 0
    d = json.loads((tmp_path / "d.json").read_text())
    assert list(d["stages"]) == ["ar"] and d["stages"]["ar"] == done["stages"]["ar"] and "speak" not in d
    assert "only ar has checkpointed" in capsys.readouterr().out
    shutil.rmtree(out / "train")
    assert main([str(cfg), str(m), "--no-speak"]) == 2
    assert "no stage has checkpointed" in capsys.readouterr().err
