"""Streaming MReQ training reads the same crops from disk as the in-memory trainer."""

import numpy as np
import torch

from halle_bench.audio import load_audio, save_audio
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.mreq import MReQModel, MReQTrainConfig, MReQTrainer
from halle_bench.baselines.mrvq import MRVQ, MRVQConfig
from halle_bench.baselines.training.mreq_stream import StreamingMReQTrainer, audio_refs, read_crop


def _setup(tmp_path, sr_file):
    codec = Codec.from_config(CodecConfig.tiny(sample_rate=4800, ratios=(5, 4, 5)), seed=0)  # 48 Hz
    rng = np.random.default_rng(0)
    paths = []
    for i, sec in enumerate([1.3, 0.4, 2.1]):
        p = tmp_path / f"{i}.wav"
        save_audio(p, (0.2 * rng.standard_normal(int(sr_file * sec))).astype(np.float32), sr_file)
        paths.append(p)
    torch.manual_seed(0)
    mrvq = MRVQ(MRVQConfig(dim=codec.dimension, teacher_rate=48, hidden=16, codebook_size=16))
    return codec, mrvq, paths


def test_streamed_crops_equal_the_in_memory_trainers(tmp_path):
    codec, mrvq, paths = _setup(tmp_path, 4800)
    cfg = MReQTrainConfig(steps=2, batch_size=3, segment_blocks=3, seed=5)
    wavs = [torch.from_numpy(load_audio(p, sr=4800)[0]) for p in paths]
    mem = MReQTrainer(MReQModel(codec, mrvq), wavs, cfg)
    refs, errors = audio_refs(paths + [tmp_path / "missing.wav"])
    assert len(refs) == 3 and len(errors) == 1 and "missing.wav" in errors[0]
    stream = StreamingMReQTrainer(MReQModel(codec, mrvq), refs, cfg)
    assert stream.data == []  # no waveform kept in memory
    for step in range(4):
        assert torch.allclose(mem.batch(step), stream.batch(step), atol=1e-6), step
    stream.fit()
    assert stream.step == 2 and np.isfinite(stream.history[-1]["loss"])


def test_crops_of_another_rate_are_resampled(tmp_path):
    _, _, paths = _setup(tmp_path, 16000)
    ref = audio_refs(paths[:1])[0][0]
    whole = load_audio(paths[0], sr=4800)[0]
    crop = read_crop(ref, 1200, 960, 4800)
    assert crop.shape == (960,)
    # the same span, resampled alone: close to the whole file resampled (edges aside)
    assert np.corrcoef(crop[50:-50], whole[1250:2110])[0, 1] > 0.95
    tail = read_crop(ref, len(whole) - 100, 400, 4800)
    assert np.all(tail[120:] == 0)  # past the end: zeros (the padded utterance)
