import numpy as np
import pytest
import torch

from halle_bench.baselines.checkpoint import CheckpointError
from halle_bench.baselines.codec import Codec, CodecConfig
from halle_bench.baselines.halle import HALLE
from halle_bench.baselines.halle_nar import level_features, pack_levels, unpack_levels, window_spans
from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
from halle_bench.baselines.mrvq import MRVQ, MRVQConfig
from halle_bench.baselines.sampling import SamplingOptions
from halle_bench.baselines.train import TrainConfig
from halle_bench.baselines.train_halle import NARTrainable, prepare_examples, train_ar, train_nar

SR = 4800  # tiny 48 Hz codec (hop 100)
TEXT = "The quick brown fox jumps."


def tiny_tokenizer(codebook_size=16, seed=0, wav=None):
    codec = Codec.from_config(CodecConfig.tiny(sample_rate=SR, ratios=(5, 4, 5)), seed=seed)
    torch.manual_seed(seed)
    mrvq = MRVQ(MRVQConfig(dim=codec.dimension, hidden=16, codebook_size=codebook_size))
    tok = MReQTokenizer(codec, mrvq)
    if wav is not None:  # data-dependent codebook init, so tokens vary like real ones
        mrvq.train()
        mrvq(tok._prepare(wav, SR))
        mrvq.eval()
    return tok


@pytest.fixture(scope="module")
def wav(speech):
    return speech(TEXT, sr=SR)


@pytest.fixture(scope="module")
def model(wav):
    return HALLE.build(tiny_tokenizer(wav=wav), size="tiny", window=96, overlap=24)


def test_window_spans_tile_exactly():
    assert window_spans(50, 96, 24) == [(0, 50, 0, 50)]
    for t, w, o in [(300, 96, 24), (97, 96, 0), (1000, 100, 30), (8640, 480, 96)]:
        spans = window_spans(t, w, o)
        assert spans[0][2] == 0 and spans[-1][3] == t
        for (s, e, ks, ke), nxt in zip(spans, spans[1:] + [None]):
            assert e - s == w and s <= ks < ke <= e
            if nxt is not None:
                assert ke == nxt[2]


def test_pack_unpack_roundtrip(model, wav):
    a, b = model.tokenizer.encode_levels(wav, SR)
    rows = torch.from_numpy(pack_levels(a, b, model.nar.cfg.ratios))[None]
    a2, b2 = unpack_levels(rows, model.nar.cfg)
    assert all(torch.equal(x, y[0]) for x, y in zip(a, a2))
    assert all(torch.equal(x, y[0]) for x, y in zip(b, b2))


def test_sliding_window_equals_full_when_window_covers_all(model, wav):
    toks = model.tokenizer.encode(wav, SR)
    b = [toks[r].unsqueeze(0) for r in model.tokenizer.rates]
    t = b[-1].shape[-1]
    text = torch.tensor([model.text_ids(TEXT, None)])
    tl = torch.tensor([text.shape[1]])
    prompt = level_features(model.mrvq, [x[..., :12 // r] for x, r in zip(b, model.nar.cfg.ratios)], 4)
    feats = level_features(model.mrvq, b, 1)
    for k in range(3):
        full_logits = model.nar(text, tl, prompt, torch.tensor([12]), feats, torch.tensor([t]), torch.tensor([k]))
        full = torch.stack([lg.argmax(-1) for lg in full_logits], 1)
        win = model.nar.predict_level(model.mrvq, text, tl, prompt, feats, k, window=t, overlap=0)
        assert torch.equal(win, full)
        # smaller windows: same shape, every frame filled from some window
        small = model.nar.predict_level(model.mrvq, text, tl, prompt, feats, k, window=30, overlap=10)
        assert small.shape == full.shape


def test_generate_levels_have_consistent_lengths(model, wav):
    toks = model.tokenizer.encode(wav[: SR], SR)
    opts = SamplingOptions(top_k=5, max_new_tokens=6)
    new = model.generate_tokens(model.text_ids(TEXT, None), toks, opts, seed=0)
    n = new[8].shape[-1]
    assert 1 <= n <= 6
    assert {r: c.shape[-1] for r, c in new.items()} == {8: n, 16: 2 * n, 24: 3 * n, 48: 6 * n}
    assert new[8].shape[0] == 2  # two codebooks at 8 Hz (delay pattern in the AR)
    again = model.generate_tokens(model.text_ids(TEXT, None), toks, opts, seed=0)
    assert all(torch.equal(new[r], again[r]) for r in new)
    info = model.last_timing
    assert info["ar_steps"] == n + 2 and info["ar_seconds"] > 0 and info["nar_seconds"] > 0
    out = model.synthesize(TEXT, wav[:SR], None, opts, seed=0, prompt_sr=SR)
    assert out.dtype == np.float32 and out.shape[0] % (SR // 8) == 0


def test_init_from_valle_loads_shared_weights(tmp_path):
    from halle_bench.baselines.valle import VALLE

    valle_codec = Codec.from_config(CodecConfig.tiny(), seed=0)  # 64 codes
    valle = VALLE.build(valle_codec, size="tiny", seed=1)
    valle.save(tmp_path / "valle")
    vstate = {k[3:]: v for k, v in valle.lm.state_dict().items() if k.startswith("ar.")}

    same = HALLE.build(tiny_tokenizer(codebook_size=64), size="tiny", seed=2)  # 8 Hz: 2 x 64 codes
    fresh = {k: v.clone() for k, v in same.ar.state_dict().items()}
    rep = same.init_from_valle(tmp_path / "valle")
    own = same.ar.state_dict()
    for k, v in vstate.items():
        if k.startswith("decoder.") or k.startswith("text_emb.") or k == "text_pos.alpha":
            assert torch.equal(own[k], v), k
            assert k in rep["loaded"]
    # Only transformer blocks and the text side: VALL-E's EnCodec codebook-1 embedding is
    # unrelated to the MRVQ's 8 Hz codes, so no audio embedding (= tied head) is copied,
    # and the two delay-pattern heads stay distinct.
    for i in range(2):
        assert torch.equal(own[f"audio_emb.{i}.weight"], fresh[f"audio_emb.{i}.weight"])
        assert not torch.equal(own[f"audio_emb.{i}.weight"], vstate["audio_emb.0.weight"])
        assert f"audio_emb.{i}.weight" not in rep["loaded"]
    assert not torch.equal(own["audio_emb.0.weight"], own["audio_emb.1.weight"])
    assert "audio_emb.0.weight" in rep["skipped"] and "audio_pos.alpha" in rep["skipped"]
    assert all(k.startswith(("decoder.", "text_emb.", "text_pos.")) for k in rep["loaded"])

    other = HALLE.build(tiny_tokenizer(codebook_size=16), size="tiny", seed=2)  # codebook size differs
    before = other.ar.state_dict()["audio_emb.0.weight"].clone()
    rep = other.init_from_valle(tmp_path / "valle")
    assert "audio_emb.0.weight" in rep["skipped"]
    assert torch.equal(other.ar.state_dict()["audio_emb.0.weight"], before)
    assert torch.equal(other.ar.state_dict()["decoder.layers.0.ff.0.weight"], vstate["decoder.layers.0.ff.0.weight"])


def test_checkpoint_roundtrip_and_strict(model, wav, tmp_path):
    model.save(tmp_path / "h")
    loaded = HALLE.load(tmp_path / "h")
    for k, v in model.lm.state_dict().items():
        assert torch.equal(loaded.lm.state_dict()[k], v), k
    toks = model.tokenizer.encode(wav[:SR], SR)
    opts = SamplingOptions(top_k=5, max_new_tokens=4)
    a = model.generate_tokens(model.text_ids(TEXT, None), toks, opts, seed=3)
    b = loaded.generate_tokens(loaded.text_ids(TEXT, None), toks, opts, seed=3)
    assert all(torch.equal(a[r], b[r]) for r in a)
    # a different MRVQ in the tokenizer folder is refused
    other = tiny_tokenizer(seed=5)
    from halle_bench.baselines.mreq import save_mrvq

    save_mrvq(tmp_path / "h" / "tokenizer", other.mrvq)
    with pytest.raises(CheckpointError, match="MRVQ"):
        HALLE.load(tmp_path / "h")


def test_nar_trainable_hides_the_frozen_mrvq(model):
    t = NARTrainable(model.nar, model.mrvq)
    assert set(t.state_dict()) == {f"nar.{k}" for k in model.nar.state_dict()}
    assert all(not k.startswith("mrvq") for k, _ in t.named_parameters())


def _overfit(wav, ar_steps, nar_steps, nar_batch=1, **tf_kw):
    tok = tiny_tokenizer(wav=wav)
    h = HALLE.build(tok, size="tiny", window=96, overlap=24, **tf_kw)
    ex = prepare_examples(tok, h.frontend, [(TEXT, wav, SR)])
    cfg = dict(lr=5e-3, warmup_steps=10, weight_decay=0.0, log_every=1000)
    train_ar(h, ex, TrainConfig(steps=ar_steps, batch_size=1, **cfg))
    # several random prompt cuts of the same utterance per step smooth the NAR's gradients
    train_nar(h, ex, TrainConfig(steps=nar_steps, batch_size=nar_batch, **cfg))
    a, b = tok.encode_levels(wav, SR)
    ids = ex.ar[0].text
    p8 = 3  # prompt: the first 3/8 s
    ratios = h.nar.cfg.ratios
    # AR: greedy continuation of the prompt's 8 Hz tokens
    gen = h.ar.generate(torch.tensor([ids]), torch.tensor([len(ids)]), b[0][None, :, :p8], torch.tensor([p8]),
                        SamplingOptions(top_k=1, max_new_tokens=4 * b[0].shape[-1]))[0]
    truth = b[0][:, p8:]
    n = min(gen.shape[-1], truth.shape[-1])
    ar_acc = float((gen[:, :n] == truth[:, :n]).float().sum()) / truth.numel()
    # NAR: from the true 8 Hz tokens, every higher level
    p = p8 * ratios[0]
    prompt = level_features(h.mrvq, [x[None, :, : p // r] for x, r in zip(b, ratios)], len(b))
    text = torch.tensor([ids])
    out = h.nar.generate(h.mrvq, text, torch.tensor([len(ids)]), prompt, b[0][None, :, p8:])
    nar_acc = [float((o[0] == x[:, p // r:]).float().mean()) for o, x, r in zip(out[1:], b[1:], ratios[1:])]
    return ar_acc, nar_acc


def test_overfit_one_utterance_fast(wav):
    ar_acc, nar_acc = _overfit(wav, ar_steps=80, nar_steps=300)
    assert ar_acc >= 0.6, ar_acc
    assert min(nar_acc) >= 0.25, nar_acc  # chance is 1/16; the slow variant reaches >= 0.9


@pytest.mark.slow
def test_overfit_one_utterance_reaches_90_percent(wav):
    ar_acc, nar_acc = _overfit(wav, ar_steps=200, nar_steps=1500, nar_batch=4, d_model=128, d_ff=256)
    assert ar_acc >= 0.9, ar_acc
    assert min(nar_acc) >= 0.9, nar_acc
