"""Token extraction: written once, keyed by audio + encoder identity, read memory-mapped."""

import numpy as np
import pytest

from halle_bench.audio import save_audio
from halle_bench.baselines.training.shards import ShardExamples, TokenStore, WavHasher, extract_tokens


class CountingEncoder:
    """A deterministic stand-in for a codec: frame means quantised to 64 levels (10 ms frames)."""

    def __init__(self):
        self.calls = 0
        self.items = 0

    def __call__(self, wavs):
        self.calls += 1
        self.items += len(wavs)
        out = []
        for x in wavs:
            n = (len(x) + 159) // 160
            fr = np.pad(x, (0, n * 160 - len(x))).reshape(n, 160)
            q = np.clip(((fr.mean(1) + 1) * 32).astype(np.int64), 0, 63)
            out.append({"codes": np.stack([q, 63 - q]), "coarse": q[None, ::4]})
        return out


@pytest.fixture
def wavs(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, sec in enumerate([0.5, 1.2, 0.8, 0.3]):
        p = tmp_path / f"w{i}.wav"
        save_audio(p, (0.3 * rng.standard_normal(int(16000 * sec))).astype(np.float32), 16000)
        paths.append(p)
    # the same audio as w0 under another name: encoded once
    (tmp_path / "copy.wav").write_bytes(paths[0].read_bytes())
    return paths + [tmp_path / "copy.wav"]


def _items(paths, hasher):
    return [(hasher.sha256(p), p) for p in paths]


def test_second_extraction_encodes_nothing_and_shards_are_memory_mapped(tmp_path, wavs):
    root = tmp_path / "tokens"
    h = WavHasher(root / "wav_sha256.json")
    enc = CountingEncoder()
    store, st = extract_tokens(_items(wavs, h), enc, {"codec": "x", "sha": "1"}, root, 16000, batch_size=2, chunk_items=2)
    h.save()
    assert enc.items == 4 and st.encoded == 4 and enc.calls == 2  # 4 distinct audios: 2 chunks, one batch each
    a = store.get(h.sha256(wavs[1]), "codes")
    assert isinstance(a.base, np.memmap) or isinstance(a, np.memmap)
    assert a.shape == (2, 120) and a.dtype == np.int16
    assert store.length(h.sha256(wavs[1]), "coarse") == 30
    # the same data again (fresh hasher object, same cache file): nothing encoded, nothing re-hashed
    h2 = WavHasher(root / "wav_sha256.json")
    enc2 = CountingEncoder()
    store2, st2 = extract_tokens(_items(wavs, h2), enc2, {"codec": "x", "sha": "1"}, root, 16000)
    assert enc2.calls == 0 and st2.encoded == 0 and st2.reused == 5 and h2.hashed == 0
    assert np.array_equal(store2.get(h2.sha256(wavs[1]), "codes"), a)
    # another encoder identity: a separate store, encoded afresh
    enc3 = CountingEncoder()
    extract_tokens(_items(wavs, h2), enc3, {"codec": "x", "sha": "2"}, root, 16000)
    assert enc3.items == 4


def test_extraction_resumes_chunks_and_records_bad_audio(tmp_path, wavs):
    root = tmp_path / "tokens"
    h = WavHasher(root / "h.json")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not a wav")
    items = _items(wavs[:4] + [bad], h)
    enc = CountingEncoder()
    extract_tokens(items[:2], enc, {"id": 1}, root, 16000, chunk_items=1)
    # "interrupted" after those chunks: the next run only encodes the rest
    enc2 = CountingEncoder()
    store, st = extract_tokens(items, enc2, {"id": 1}, root, 16000, chunk_items=1)
    assert enc2.items == 2 and st.reused == 2
    assert items[4][0] not in store and "bad.wav" in store.errors[items[4][0]]


def test_wav_hash_is_cached_by_size_and_mtime(tmp_path, wavs):
    h = WavHasher(tmp_path / "h.json")
    a = h.sha256(wavs[0])
    assert h.sha256(wavs[0]) == a and h.hashed == 1
    save_audio(wavs[0], np.zeros(800, dtype=np.float32), 16000)  # changed file: hashed again
    assert h.sha256(wavs[0]) != a and h.hashed == 2
    with pytest.raises(FileNotFoundError):
        h.sha256(tmp_path / "missing.wav")


def test_shard_examples_give_lengths_without_reading(tmp_path, wavs):
    root = tmp_path / "tokens"
    h = WavHasher(root / "h.json")
    store, _ = extract_tokens(_items(wavs[:3], h), CountingEncoder(), {"id": 1}, root, 16000)
    ex = ShardExamples(TokenStore(store.dir), [(h.sha256(w), [1, 2], w.stem) for w in wavs[:3]], "codes")
    assert ex.lengths == [50, 120, 80]
    e = ex[2]
    assert e.id == "w2" and e.text == [1, 2] and e.codes.shape == (2, 80)
