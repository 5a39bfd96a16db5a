"""Token extraction as its own resumable stage: codec / MReQ tokens written once into shards.

Layout under `root` (the training's `tokens/` folder, or `[data] tokens_dir`):

    wav_sha256.json                    path -> (size, mtime_ns, sha256): each wav hashed once
    <store id>/identity.json           what made the tokens (codec or tokenizer identity + sha256)
    <store id>/shards/<chunk>.<name>.npy   int16/int32 [rows, sum of frames] per array name
    <store id>/shards/<chunk>.json     the chunk's index (written last: a chunk without it is redone)
    <store id>/manifest.json           every item: audio sha256 -> shard, offset and length per name

`<store id>` hashes the encoder's identity (codec config + weights sha256, or the MReQ
tokenizer's), so a changed codec never reuses stale tokens; items are keyed by the audio's
sha256, so the same audio under another path or manifest is not encoded again. Training opens
the shards memory-mapped (`np.load(mmap_mode="r")`) and slices an item's frames on demand.

Extraction is batched (`batch_size` items of similar length padded together; the padding
tail only touches the last frames' receptive field, and the codes are cut to each item's own
frame count) and runs on the encoder's device. Under torchrun every rank encodes its own chunks
(chunk i on rank i mod world), then rank 0 merges the chunk indexes into the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from halle_bench.audio import sha256_file

from . import dist as D

# wavs at the encoder's rate -> per item {array name: int array [rows, frames]}
Encoder = Callable[[list[np.ndarray]], list[dict[str, np.ndarray]]]


class WavHasher:
    """sha256 of audio files, remembered by (absolute path, size, mtime_ns) in a JSON file."""

    def __init__(self, cache: str | Path):
        self.path = Path(cache)
        self.hashed = 0  # files actually read this session
        try:
            self.known: dict[str, list] = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, json.JSONDecodeError):
            self.known = {}  # a damaged cache only costs re-hashing

    def sha256(self, wav: str | Path) -> str:
        p = Path(wav).resolve()
        st = p.stat()  # FileNotFoundError names the file
        k = str(p)
        got = self.known.get(k)
        if got and got[0] == st.st_size and got[1] == st.st_mtime_ns:
            return got[2]
        h = sha256_file(p)
        self.hashed += 1
        self.known[k] = [st.st_size, st.st_mtime_ns, h]
        return h

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.known))
        tmp.replace(self.path)


def store_id(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class ExtractStats:
    encoded: int = 0  # items encoded this call
    encoder_calls: int = 0
    reused: int = 0  # items found in the store
    errors: dict[str, str] | None = None


class TokenStore:
    """The shards of one encoder identity, opened memory-mapped."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        m = self.dir / "manifest.json"
        self.items: dict[str, dict[str, Any]] = json.loads(m.read_text())["items"] if m.exists() else {}
        self.errors: dict[str, str] = json.loads(m.read_text()).get("errors", {}) if m.exists() else {}
        self._open: dict[str, np.ndarray] = {}

    def __contains__(self, sha: str) -> bool:
        return sha in self.items

    def length(self, sha: str, name: str) -> int:
        return int(self.items[sha]["arrays"][name][1])

    def get(self, sha: str, name: str) -> np.ndarray:
        """Item `sha`'s array `name` [rows, frames], a view into the memory-mapped shard."""
        e = self.items[sha]
        key = f"{e['shard']}.{name}"
        arr = self._open.get(key)
        if arr is None:
            arr = self._open[key] = np.load(self.dir / "shards" / f"{key}.npy", mmap_mode="r", allow_pickle=False)
        off, n = e["arrays"][name]
        return arr[:, off:off + n]

    def __getstate__(self):  # DataLoader workers re-open the maps themselves
        return {**self.__dict__, "_open": {}}


def _chunk_name(shas: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()[:16]


def _write_chunk(shard_dir: Path, name: str, results: dict[str, dict[str, np.ndarray]], errors: dict[str, str]) -> None:
    index: dict[str, Any] = {"items": {}, "errors": errors}
    names = sorted({k for r in results.values() for k in r})
    offsets = {k: 0 for k in names}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for sha, arrays in results.items():
        index["items"][sha] = {"shard": name, "arrays": {}}
        for k in names:
            a = arrays[k]
            index["items"][sha]["arrays"][k] = [offsets[k], int(a.shape[1])]
            offsets[k] += int(a.shape[1])
            parts[k].append(a)
    for k in names:
        a = np.concatenate(parts[k], axis=1)
        dtype = np.int16 if a.size == 0 or (a.min() >= -32768 and a.max() < 32768) else np.int32
        tmp = shard_dir / f"{name}.{k}.tmp.npy"
        np.save(tmp, a.astype(dtype), allow_pickle=False)
        tmp.replace(shard_dir / f"{name}.{k}.npy")
    tmp = shard_dir / f"{name}.json.tmp"
    tmp.write_text(json.dumps(index))
    tmp.replace(shard_dir / f"{name}.json")


def _merge(directory: Path) -> None:
    items: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for p in sorted((directory / "shards").glob("*.json")):
        idx = json.loads(p.read_text())
        items.update(idx["items"])
        errors.update(idx.get("errors", {}))
    tmp = directory / "manifest.json.tmp"
    tmp.write_text(json.dumps({"items": items, "errors": errors}))
    tmp.replace(directory / "manifest.json")


def extract_tokens(items: Sequence[tuple[str, str | Path]], encoder: Encoder, identity: dict[str, Any],
                   root: str | Path, sample_rate: int, batch_size: int = 16, chunk_items: int = 256,
                   reporter=None) -> tuple[TokenStore, ExtractStats]:
    """Encode every (audio sha256, wav path) not yet in the store of `identity`; returns the store.

    An unreadable wav is recorded in the store's `errors` (sha -> reason), not raised, and is
    not retried (delete the store to retry). Resumable at chunk granularity.
    """
    import soundfile as sf

    from halle_bench.audio import load_audio

    info = D.current()
    d = Path(root) / store_id(identity)
    shard_dir = d / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    if info.is_main:
        (d / "identity.json").write_text(json.dumps(identity, indent=2, sort_keys=True, default=str))
        _merge(d)  # chunks finished by an interrupted run join the manifest
    D.barrier()
    store = TokenStore(d)
    stats = ExtractStats(errors={})
    todo: dict[str, Path] = {}
    for sha, path in items:
        if sha in store or sha in store.errors:
            stats.reused += 1
        elif sha not in todo:
            todo[sha] = Path(path)

    def frames(sha: str) -> int:
        try:
            return int(sf.info(str(todo[sha])).frames)
        except Exception:  # noqa: BLE001  (an unreadable file fails below, with its reason)
            return 0

    order = sorted(todo, key=lambda s: (frames(s), s))
    chunks = [order[i:i + chunk_items] for i in range(0, len(order), chunk_items)]
    mine = [c for j, c in enumerate(chunks) if j % info.world == info.rank]
    for c in mine:
        name = _chunk_name(c)
        if (shard_dir / f"{name}.json").exists():
            continue
        results: dict[str, dict[str, np.ndarray]] = {}
        errors: dict[str, str] = {}
        wavs: list[tuple[str, np.ndarray]] = []
        for sha in c:
            try:
                x, _, _ = load_audio(todo[sha], sr=sample_rate)
                if x.size == 0:
                    raise ValueError("empty audio")
                wavs.append((sha, x))
            except Exception as e:  # noqa: BLE001  (recorded with the file's name, never dropped silently)
                errors[sha] = f"{todo[sha]}: {e}"
        for s in range(0, len(wavs), batch_size):
            part = wavs[s:s + batch_size]
            out = encoder([x for _, x in part])
            stats.encoder_calls += 1
            for (sha, _), arrays in zip(part, out):
                results[sha] = arrays
            stats.encoded += len(part)
        _write_chunk(shard_dir, name, results, errors)
        stats.errors.update(errors)
        if reporter is not None:
            reporter.log(f"tokens: chunk {name} ({len(results)} items, {len(errors)} unreadable)")
    D.barrier()
    if info.is_main:
        _merge(d)
    D.barrier()
    store = TokenStore(d)
    return store, stats


# ------------------------------------------------------------------ encoders
def codec_encoder(codec, batch_pad: bool = True) -> Encoder:
    """Codec codes {"codes": [n_q, frames]} for a batch of wavs at the codec's rate."""
    import math

    import torch

    def enc(wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        n = max(len(x) for x in wavs)
        batch = np.zeros((len(wavs), n), dtype=np.float32)
        for i, x in enumerate(wavs):
            batch[i, :len(x)] = x
        with torch.no_grad():
            codes = codec.encode(torch.from_numpy(batch).to(codec.device)).cpu().numpy()
        hop = codec.sample_rate / codec.frame_rate
        return [{"codes": codes[i, :, :int(math.ceil(len(x) / hop))].astype(np.int32)} for i, x in enumerate(wavs)]

    return enc


def halle_encoder(tokenizer) -> Encoder:
    """HALL-E's AR tokens {"ar": b_1 [n_q1, T_8Hz]} and NAR rows {"nar": pack_levels(a, b)}.

    One item per tokenizer call: MReQ pads each item to whole 1/s_1-second blocks itself.
    """
    from halle_bench.baselines.halle_nar import pack_levels

    ratios = tokenizer.mrvq.cfg.ratios

    def enc(wavs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        out = []
        for x in wavs:
            a, b = tokenizer.encode_levels(x, tokenizer.sample_rate)
            out.append({"ar": b[0].cpu().numpy().astype(np.int32),
                        "nar": np.asarray(pack_levels(a, b, ratios)).astype(np.int32)})
        return out

    return enc


class ShardExamples:
    """Training examples backed by a TokenStore: text ids in RAM, tokens memory-mapped.

    `lengths` (frames of `name`, no token read) feeds the batch sampler.
    """

    def __init__(self, store: TokenStore, entries: Sequence[tuple[str, list[int], str]], name: str):
        self.store, self.entries, self.name = store, list(entries), name
        self.lengths = [store.length(sha, name) for sha, _, _ in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        from halle_bench.baselines.train import Example

        sha, ids, uid = self.entries[i]
        return Example(ids, np.asarray(self.store.get(sha, self.name)), uid)


__all__ = ["WavHasher", "TokenStore", "ExtractStats", "extract_tokens", "codec_encoder", "halle_encoder",
           "ShardExamples", "store_id", "Encoder"]
