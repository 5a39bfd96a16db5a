"""Issue 10's HALL-E fixes: each test here fails on the code before the fix."""

import numpy as np
import pytest
import torch

from halle_bench.baselines.halle import HALLE
from halle_bench.baselines.halle_nar import (level_features, pack_levels, reencode_level, text_span,
                                             training_window, window_spans)

from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
from halle_bench.baselines.mrvq import MRVQ, MRVQConfig

SR = 4800  # tiny 48 Hz codec (hop 100)
TEXT = "The quick brown fox jumps."


def tiny_tokenizer(wav, codebook_size=16, seed=0):
    codec = Codec.from_config(CodecConfig.tiny(sample_rate=SR, ratios=(5, 4, 5)), seed=seed)
    torch.manual_seed(seed)
    mrvq = MRVQ(MRVQConfig(dim=codec.dimension, hidden=16, codebook_size=codebook_size))
    tok = MReQTokenizer(codec, mrvq)
    mrvq.train()
    mrvq(tok._prepare(wav, SR))  # data-dependent codebook init, so tokens vary like real ones
    mrvq.eval()
    return tok


@pytest.fixture(scope="module")
def wav(speech):
    return speech(TEXT + " It ran far away over the green hills.", sr=SR)


@pytest.fixture(scope="module")
def model(wav):
    return HALLE.build(tiny_tokenizer(wav), size="tiny", window=48, overlap=12)


def test_text_embedding_init_and_memory_norm(model):
    nar = model.nar
    d = nar.cfg.transformer.d_model
    # std d^-1/2 like the AR / VALL-E NAR (it was N(0, 1), then scaled by sqrt(d))
    assert abs(float(nar.text_emb.weight.std()) - d**-0.5) < 0.2 * d**-0.5
    text = torch.randint(0, nar.cfg.n_text_tokens, (2, 30))
    lens = torch.tensor([30, 20])
    mem, pad = nar.text_memory(text, lens)
    # normalised before cross-attention: zero mean, unit variance per token
    assert torch.allclose(mem.mean(-1), torch.zeros(2, 30), atol=1e-4)
    assert torch.allclose(mem.std(-1, unbiased=False), torch.ones(2, 30), atol=1e-2)
    assert pad[1, 20:].all() and not pad[1, :20].any()


def test_cross_attention_logits_are_order_one_at_init(model):
    """At init the text memory must not drown the positions (logit std was 5-10)."""
    nar = model.nar
    blk = nar.transformer.layers[0]
    d, h = nar.cfg.transformer.d_model, nar.cfg.transformer.n_heads
    torch.manual_seed(0)
    text = torch.randint(0, nar.cfg.n_text_tokens, (1, 40))
    mem, _ = nar.text_memory(text, torch.tensor([40]))
    x = blk.norm_x(torch.randn(1, 50, d), torch.zeros(1, dtype=torch.long))
    with torch.no_grad():
        q = blk.xattn.q(x).view(1, 50, h, d // h).transpose(1, 2)
        k = blk.xattn.kv(mem).chunk(2, dim=-1)[0].view(1, 40, h, d // h).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / (d // h) ** 0.5
    assert float(logits.std()) < 1.5


def test_text_span_is_proportional_with_margin():
    assert text_span(0, 100, 100, 40, 0.25, 4) == (0, 40)
    lo, hi = text_span(500, 600, 1000, 200, 0.25, 4)  # proportional: tokens 100..120
    assert (lo, hi) == (95, 125)
    assert text_span(990, 1000, 1000, 50, 0.0, 2) == (47, 50)  # clipped at the end
    assert text_span(0, 10, 1000, 50, 0.0, 0)[1] > text_span(0, 10, 1000, 50, 0.0, 0)[0]  # never empty


def test_training_windows_are_random_offsets_of_at_most_window_frames():
    g = torch.Generator().manual_seed(0)
    spans = {training_window(600, 60, 96, 6, g) for _ in range(200)}
    assert all(e - s == 96 and s >= 60 and e <= 600 and (s - 60) % 6 == 0 for s, e in spans)
    starts = {s for s, _ in spans}
    assert min(starts) < 120 and max(starts) > 450  # windows come from all over the utterance
    assert training_window(100, 30, 96, 6, g) == (30, 100)  # short: the whole target


class _Recorder:
    def __init__(self, nar):
        self.nar, self.calls = nar, []
        self.orig = nar.forward

    def __enter__(self):
        def rec(text, text_lens, prompt, prompt_lens, feats, feat_lens, stage):
            self.calls.append({"text": text.clone(), "text_lens": text_lens.clone(), "t": feats.shape[-1],
                               "feat_lens": feat_lens.clone(), "tp": prompt.shape[-1]})
            return self.orig(text, text_lens, prompt, prompt_lens, feats, feat_lens, stage)

        self.nar.forward = rec
        return self

    def __exit__(self, *a):
        del self.nar.forward


def test_training_and_inference_see_the_same_kind_of_window(model, wav):
    nar, mrvq = model.nar, model.mrvq
    a, b = model.tokenizer.encode_levels(wav, SR)
    rows = torch.from_numpy(pack_levels(a, b, nar.cfg.ratios))[None]
    n = rows.shape[-1]
    assert n > nar.cfg.window  # the utterance is longer than one window
    ids = torch.arange(60)[None] % nar.cfg.n_text_tokens
    g = torch.Generator().manual_seed(3)
    with _Recorder(nar) as r:
        for _ in range(6):
            nar.loss(mrvq, ids, torch.tensor([60]), rows, torch.tensor([n]), generator=g, stage=0)
    # training: one window of at most `window` frames with a text span, not the whole rest + whole text
    assert all(c["t"] <= nar.cfg.window for c in r.calls)
    assert all(int(c["text_lens"][0]) < 60 for c in r.calls)
    # inference: every window gets its own span of the text
    toks = [x[None] for x in b]
    prompt = level_features(mrvq, [x[..., : 12 // q] for x, q in zip(toks, nar.cfg.ratios)], 4)
    feats = level_features(mrvq, toks, 1)[..., 12:]
    with _Recorder(nar) as r:
        nar.predict_level(mrvq, ids, torch.tensor([60]), prompt, feats, 0)
    spans = window_spans(feats.shape[-1], nar.cfg.window, nar.cfg.overlap)
    assert len(r.calls) == len(spans) > 1
    assert all(c["t"] <= nar.cfg.window and int(c["text_lens"][0]) < 60 for c in r.calls)
    first, last = r.calls[0]["text"][0], r.calls[-1]["text"][0]
    assert int(first[0]) == 0 and int(last[-1]) == 59  # the first window starts the text, the last ends it


def test_mrvq_runs_in_fp32_under_bf16_autocast():
    # Paper-sized codebooks (1024 in 128-d) whose nearest codes are close enough that bf16
    # re-picks some of them (the old code changed ~4 % of b_2 and the features).
    torch.manual_seed(0)
    mrvq = MRVQ(MRVQConfig(dim=128, hidden=256, codebook_size=1024))
    for lv in mrvq.levels:  # a "trained" sub-decoder (it starts at zero output)
        torch.nn.init.normal_(lv.decoder.net[-1].weight, std=0.05)
    mrvq.train()
    mrvq(torch.randn(4, 128, 480))
    mrvq.eval()
    bs = [torch.randint(0, 1024, (1, lv.quant.n_q, 480 // lv.ratio)) for lv in mrvq.levels]
    a = torch.randint(0, 1024, (1, 1, 480))
    ref, ref_b = level_features(mrvq, bs, 4), reencode_level(mrvq, 1, a)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, got_b = level_features(mrvq, bs, 4), reencode_level(mrvq, 1, a)
    assert got.dtype == torch.float32
    assert torch.equal(got, ref) and torch.equal(got_b, ref_b)
