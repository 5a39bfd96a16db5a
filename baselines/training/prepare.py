"""From manifest utterances to training data: the validation split, hashing each wav once, the
token extraction stage, and the memory-mapped example sets the loop trains on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .shards import ExtractStats, ShardExamples, TokenStore, WavHasher, extract_tokens


def split_items(utts: Sequence[Any], val_items: int, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """(train, validation): the `val_items` utterances whose sha256(seed:id) sort first are held out.

    By id hash rather than position, so that adding utterances to a manifest moves few others.
    """
    if val_items <= 0:
        return list(utts), []
    if val_items >= len(utts):
        raise ValueError(f"val_items = {val_items} leaves nothing to train on ({len(utts)} utterances)")
    key = lambda u: hashlib.sha256(f"{seed}:{u.id}".encode()).hexdigest()
    held = {u.id for u in sorted(utts, key=key)[:val_items]}
    return [u for u in utts if u.id not in held], [u for u in utts if u.id in held]


@dataclass
class Tokenized:
    store: TokenStore
    shas: dict[str, str]  # utterance id -> audio sha256 (those with tokens)
    errors: list[str] = field(default_factory=list)  # "<id>: <reason>" for every item left out
    stats: ExtractStats | None = None
    hashed: int = 0  # wav files read to hash them in this call


def tokenize(utts: Sequence[Any], encoder, identity: dict[str, Any], root: Path, sample_rate: int,
             batch_size: int, reporter=None) -> Tokenized:
    """Hash every wav (cached), extract the tokens not yet in the store, map utterances to them."""
    hasher = WavHasher(Path(root) / "wav_sha256.json")
    pairs, shas, errors = [], {}, []
    for u in utts:
        try:
            h = hasher.sha256(u.audio)
        except OSError as e:
            errors.append(f"{u.id}: {u.audio}: {e}")
            continue
        shas[u.id] = h
        pairs.append((h, u.audio))
    from . import dist as D

    if D.current().is_main:
        hasher.save()
    store, stats = extract_tokens(pairs, encoder, identity, root, sample_rate, batch_size, reporter=reporter)
    for uid, h in list(shas.items()):
        if h not in store:
            errors.append(f"{uid}: {store.errors.get(h, 'no tokens')}")
            del shas[uid]
    return Tokenized(store, shas, errors, stats, hasher.hashed)


def examples(tok: Tokenized, utts: Sequence[Any], frontend, name: str, max_frames: float | None,
             errors: list[str]) -> ShardExamples:
    """Memory-mapped examples of array `name` for the utterances that have tokens; an
    unpronounceable text joins `errors`; items longer than `max_frames` are left out (counted)."""
    from halle_bench.errors import UtteranceError

    keep = []
    for u in utts:
        if u.id not in tok.shas:
            continue
        if max_frames is not None and tok.store.length(tok.shas[u.id], name) > max_frames:
            continue
        keep.append(u)
    ids: dict[str, list[int]] = {}
    for s in range(0, len(keep), 256):  # phonemise in batches (one espeak call), per item on error
        part = keep[s:s + 256]
        try:
            for u, e in zip(part, frontend.encode_batch([u.text for u in part])):
                ids[u.id] = e.ids
        except (UtteranceError, ValueError, RuntimeError):
            for u in part:
                try:
                    ids[u.id] = frontend.encode(u.text).ids
                except (UtteranceError, ValueError, RuntimeError) as e:
                    errors.append(f"{u.id}: {e}")
    entries = [(tok.shas[u.id], ids[u.id], str(u.id)) for u in keep if u.id in ids]
    return ShardExamples(tok.store, entries, name)


__all__ = ["split_items", "tokenize", "examples", "Tokenized"]
