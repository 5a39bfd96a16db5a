"""End to end: a tiny VALL-E and a tiny HALL-E memorise four espeak-ng clips and speak them.

Every link a real benchmark run uses is on the path, nothing is mocked:

    espeak-ng wav (24 kHz) -> `halle-bench train` (config, token shards, the loop, AR then NAR)
    -> the checkpoint folder it writes -> the `valle` / `halle` system adapters (as
    `halle-bench run` builds them) -> greedy generation (text tokens, masks, KV cache, EOS,
    NAR) -> the codec's / MReQ tokenizer's decoder -> the harness's WER scorer (Whisper base).

The pass mark: the scorer hears the generated speech about as well as it hears the codec's
own resynthesis of the same clips (the best a model on this codec can do):
WER(model) <= WER(resynthesis) + `MARGIN`; every item stops by itself (EOS, not the
length cap) at exactly the clip's true length (a memorised model gets every frame right);
the resynthesis still looks like the clip (`spectral_similarity` >= `MIN_CLIP_SIMILARITY`:
a broken decoder, which would drag the resynthesis down with the model, cannot hide behind
the relative WER); and the model's speech looks like the resynthesis
(>= `MIN_SAME_SIMILARITY`: the model made the clip's tokens).

ASR noise sets `MARGIN`: on the refitted codecs (commit 48e028c) the models' speech is
0.994-0.997 similar to the resynthesis, and still Whisper's corpus WER on the 26 words
differs from the resynthesis's by up to +0.23 (tiny.en: VALL-E 0.231 vs 0.346, HALL-E
0.538 vs 0.308) or +0.15 (base: VALL-E 0.500 vs 0.346, HALL-E 0.423 vs 0.308). Hence
Whisper base and 0.25; the similarity is the precise criterion, the WER says the harness's
scorer hears the texts.

What a broken link does (measured on the refitted codecs by monkeypatching one link at a
time in a scratch copy, same trained checkpoints; Whisper base, 26 words; "similarity" is
the model's speech against the resynthesis):

| broken link | VALL-E | HALL-E |
|---|---|---|
| none | passes: WER 0.500 vs resynthesis 0.346, frames exact, similarity 0.994-0.997 | passes: WER 0.423 vs 0.308, similarity 0.993-0.996 |
| no EOS (its logit never wins) | fails: runs to the cap (448-592 frames for 86-114), WER 3.69 | fails: 56-74 frames for 15-19, WER 0.96 |
| text ids off by one | fails: frames, similarity down to 0.85, WER 0.77 | fails: similarity down to 0.84, WER 0.73 |
| NAR (VALL-E: codebook 0 copied to all; HALL-E: code 0 at every finer level) | fails: WER 1.15 (similarity 0.97) | fails: WER 0.96 (similarity 0.97) |
| KV cache keeps no generated step | fails: a frame short, WER 0.65 | passes (output unchanged) |
| cached steps one position off | fails: every item a frame short | passes (output unchanged) |
| decoder plays backwards | fails: resynthesis to clip 0.48-0.57 (the relative WER alone passes: 1.58 vs 1.35) | fails: 0.45-0.59 (WER 1.35 vs 1.31) |
| KV cache hides the previous step | passes (output unchanged) | passes (output unchanged) |
| padding masks ignored in batched decoding | passes (output changed a little, WER 0.385) | passes (decodes one item at a time) |

A memorised model can reproduce its clips from the text and the position alone, so faults
that leave its output unchanged pass here; they are caught where the output depends on
them: cached == uncached decoding (tests/baselines/test_ar.py) and batch-independent
synthesis (tests/baselines/test_valle_system.py), both on random models.

Decisions: the shipped 48 Hz teacher codec and the shipped MReQ tokenizer (the codecs the
trained pair uses; HALL-E's pass mark moves with the tokenizer's own quality). Clips of
one voice, 1.8-2.4 s, leading and trailing silence trimmed to 40 ms as the training corpus
is (`baselines/silence.py`), so that the end of speech is one unambiguous frame. No voice
prompt: the check is about text -> speech (a memorised model handed one of its own clips
as a prompt stops at once). d_model 128, 4 heads, 4 layers, no dropout, AdamW 3e-3, full
batch, AR 80 and NAR 250 steps; one torch thread. About 75 s of CPU in all (1.8-2.9 min
of wall time on the shared 2 cores), hence `slow`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from halle_bench.audio import resample, save_audio
from halle_bench.baselines.silence import trim_silence
from halle_bench.espeak import espeak, espeak_available

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")]

TEXTS = ["The cat sat on the warm mat.", "Bright stars shine over the quiet hills.",
         "Please open the green door slowly.", "We planted seven tall trees today."]
SR = 24000
MARGIN = 0.25  # WER points above the codec's resynthesis WER (26 words: one word is 0.04; see below)
MIN_CLIP_SIMILARITY = 0.65  # log-spectral correlation of the resynthesis with the clip (spectral_similarity)
MIN_SAME_SIMILARITY = 0.90  # ... of the model's speech with the resynthesis (the same tokens, nearly)
FRAME_SLACK = 0  # frames of the model's own frame rate: a memorised model ends on the frame

MODEL = 'size = "tiny"\nd_model = 128\nn_heads = 4\nn_layers = 4\nd_ff = 512\ndropout = 0.0\n'
TRAIN = ('batch_size = 4\nlr = 3e-3\nwarmup = 10\nweight_decay = 0.0\nlog_every = 50\nseed = 0\n'
         '[train.ar]\nsteps = {ar}\n[train.nar]\nsteps = {nar}\n')


@pytest.fixture(scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    d = tmp_path_factory.mktemp("e2e")
    wavs = []
    with open(d / "train.jsonl", "w") as f:
        for i, text in enumerate(TEXTS):
            x = trim_silence(espeak(text, sr=SR), SR)
            save_audio(d / f"u{i}.wav", x, SR)
            f.write(json.dumps({"id": f"u{i}", "text": text, "audio": f"u{i}.wav"}) + "\n")
            wavs.append(x)
    return d, wavs


@pytest.fixture(scope="module")
def scorer():
    from halle_bench.metrics import build_scorer

    sc = build_scorer("wer", {"asr": "whisper-base", "beam_size": 1})
    sc.load("cpu")
    yield sc
    sc.close()


def corpus_wer(scorer, audios: list[tuple[np.ndarray, int]]) -> tuple[float, list[str]]:
    """Corpus WER (total edits / total reference words) of `audios` against TEXTS."""
    from halle_bench.metrics import ScoreItem

    items = [ScoreItem(system="e2e", utt_id=f"u{i}", audio=resample(np.asarray(a, np.float32), sr, 16000),
                       sample_rate=16000, text=t) for i, ((a, sr), t) in enumerate(zip(audios, TEXTS))]
    outs = scorer.score(items)
    assert all(o.error is None for o in outs), [o.error for o in outs]
    edits = sum(o.values["subs"] + o.values["dels"] + o.values["ins"] for o in outs)
    return edits / sum(o.values["n_ref_words"] for o in outs), [o.values["hyp_raw"] for o in outs]


def train(work: Path, name: str, body: str) -> Path:
    """`halle-bench train` on a config file: token shards, the loop, the folder it writes."""
    from halle_bench.baselines.training import load_train_config, run_training

    p = work / f"{name}.toml"
    p.write_text(body)
    return run_training(load_train_config(p))


def speak(kind: str, ckpt: Path) -> list:
    """Greedy synthesis of TEXTS through the system adapter, as `halle-bench run` drives it.
    VALL-E decodes the four as one batch (texts of different lengths: the padding masks and
    per-item EOS of batched decoding are on the path); HALL-E's adapter runs items one by one."""
    from halle_bench.systems.base import SynthesisRequest, build_system

    system = build_system(kind, {"kind": kind, "checkpoint": str(ckpt), "top_k": 1, "batch_size": len(TEXTS)},
                          ckpt.parent)
    system.cache_key()  # the run's cache key hashes the checkpoint folder
    system.load("cpu")
    try:
        out = system.synthesize([SynthesisRequest(f"u{i}", t, None, None, seed=i) for i, t in enumerate(TEXTS)])
    finally:
        system.close()
    assert all(r.ok for r in out), [r.error for r in out]
    return out


def log_spectrum(x: np.ndarray, n: int = 1024, hop: int = 256) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    return np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-4)


def spectral_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two clips' log-magnitude spectrograms (the shorter length).

    Measured at 24 kHz on these clips: a codec's resynthesis against its input 0.79-0.87
    (0.72-0.79 for the teacher refitted on 0-8 kHz), another clip 0.40-0.50, noise 0.0; the
    memorised models' speech against their codec's resynthesis 0.94-0.98 (0.994-0.997 on
    the refitted codecs), while the old teacher's and MReQ's renderings of the same clip
    were 0.87-0.89 apart. Against the clip it checks the decoder without the ASR (a decoder
    that breaks for the model breaks the resynthesis too, and a WER relative to the
    resynthesis would not see it); against the resynthesis it checks that the model made
    (nearly) the clip's own tokens, with far less noise than 26 words of ASR."""
    x, y = log_spectrum(a), log_spectrum(b)
    t = min(len(x), len(y))
    return float(np.corrcoef(x[:t].ravel(), y[:t].ravel())[0, 1])


def check(name: str, results, true_frames: list[int], frames_key: str, resynth, wavs, scorer) -> None:
    """Every pass mark of the module docstring; fails with all the ones missed."""
    def at_sr(audio, sr):
        return resample(np.asarray(audio, np.float32), sr, SR)

    clip = [spectral_similarity(w, at_sr(*r)) for w, r in zip(wavs, resynth)]
    same = [spectral_similarity(at_sr(*r), at_sr(g.audio, g.sample_rate)) for r, g in zip(resynth, results)]
    got = [int(r.info[frames_key]) for r in results]
    ceiling, hyp_c = corpus_wer(scorer, resynth)
    wer, hyp = corpus_wer(scorer, [(r.audio, r.sample_rate) for r in results])
    print(f"\n{name}: WER {wer:.3f} (greedy) vs resynthesis {ceiling:.3f}; frames {got} vs {true_frames}\n"
          f"  log-spectral similarity: resynthesis to clip {np.round(clip, 3)}, "
          f"model to resynthesis {np.round(same, 3)}\n"
          f"  model: {hyp}\n  codec: {hyp_c}")
    problems = []
    if not all(r.info["eos"] for r in results):
        problems.append(f"an item ran to the length cap: frames {got} vs {true_frames}")
    elif any(abs(g - t) > FRAME_SLACK for g, t in zip(got, true_frames)):
        problems.append(f"frames {got} vs {true_frames}")
    if min(clip) < MIN_CLIP_SIMILARITY:
        problems.append(f"the decoder's resynthesis is not the clip any more: {np.round(clip, 3)}")
    if min(same) < MIN_SAME_SIMILARITY:
        problems.append(f"the model's speech is not its codec's rendering of the clip: {np.round(same, 3)}")
    if wer > ceiling + MARGIN:
        problems.append(f"WER {wer:.3f} > resynthesis {ceiling:.3f} + {MARGIN}: {hyp}")
    assert not problems, f"{name}: " + "; ".join(problems)


def test_tiny_valle_memorises_and_speaks_through_the_system(corpus, scorer, one_thread):
    from halle_bench.baselines.shipped import load_teacher

    work, wavs = corpus
    ckpt = train(work, "valle", f'model = "valle"\nout = "ckpt/valle"\n[data]\nmanifest = "train.jsonl"\n'
                       f'[codec]\nkind = "shipped-teacher"\n[model_config]\n{MODEL}[train]\n'
                       + TRAIN.format(ar=80, nar=250))
    codec = load_teacher()
    codes = [codec.encode(w, SR) for w in wavs]
    resynth = [(codec.decode(c)[0, 0].cpu().numpy(), codec.sample_rate) for c in codes]
    check("VALL-E", speak("valle", ckpt), [int(c.shape[-1]) for c in codes], "frames", resynth, wavs, scorer)


def test_tiny_halle_memorises_and_speaks_through_the_system(corpus, scorer, one_thread):
    from halle_bench.baselines.shipped import load_mreq

    work, wavs = corpus
    ckpt = train(work, "halle", f'model = "halle"\nout = "ckpt/halle"\n[data]\nmanifest = "train.jsonl"\n'
                       f'[tokenizer]\npath = "shipped-mreq"\n[model_config]\n{MODEL}[train]\n'
                       + TRAIN.format(ar=80, nar=250))
    tok = load_mreq()
    toks = [tok.encode(w, SR) for w in wavs]
    resynth = [(tok.decode(t), tok.sample_rate) for t in toks]
    check("HALL-E", speak("halle", ckpt), [int(t[tok.rates[0]].shape[-1]) for t in toks], "frames_8hz", resynth,
          wavs, scorer)
