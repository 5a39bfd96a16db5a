"""A token pack: everything a VALL-E / HALL-E training reads, with no corpus audio and no espeak.

    python -m halle_bench.baselines.training.pack CONFIG.toml [OUT] [--write-config GPU.toml]

builds the pack of a training config (its manifest, codec or MReQ tokenizer, `[data]`
limit / val_items / seed) at OUT (default: the config's `[data] pack`). The tokens come from
the training's own token store (extracted there first if missing: a campaign's store is
reused). A training whose config says `[data] pack = "..."` then reads the pack instead of
manifest + wavs (run.py): that is how the pair is carried to a GPU machine (docs/training.md,
"On one GPU").

Layout of OUT:

    pack.json         model, encoder identity, item count, token arrays, text frontend version,
                      where the codec / tokenizer comes from, skipped items
    items.jsonl       one line per item: id, text, speaker, audio sha256, text ids (phonemised here)
    tokens/           a shards.TokenStore of exactly these items (identity.json, shards/, manifest.json)
    codec/ | tokenizer/   only when not shipped with the package (random or `checkpoint` codecs,
                      a tokenizer folder of one's own): the fitted model itself
    val/<id>.wav      the held-out utterances, with --speak-audio and a [speak] check (its prompts)

Decisions:

* The text ids are stored, not recomputed: the GPU side needs no espeak-ng, and the ids are the
  ones the manifest training would use (`PackFrontend` answers from them, and falls back to
  espeak only for texts the pack does not hold, e.g. the speak check's synthesis).
* Training from a pack checks the encoder it builds (shipped codec / tokenizer, or the pack's
  copy) against the pack's identity: tokens never meet a model of another codec.
* Every item with tokens and text ids goes in, except training items longer than `max_seconds`
  in every token array (the training would drop them: the long-clip part of the pair's corpus
  is half of VALL-E's tokens); the split and `max_seconds` are applied by the training exactly
  as from the manifest, so a pack trains like its manifest (tested: the same first-step loss).
  One difference: the validation split hashes the pack's items, so a manifest whose unreadable
  or unpronounceable items hash among the held-out ones holds out other items than its pack.
* The held-out wavs (the [speak] check's prompts) are copied only on request (`--speak-audio`):
  the GPU configs drop [speak] (no ASR weights there); run the check with diagnose.py later.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from halle_bench.baselines.text import Encoded, TextFrontend
from halle_bench.errors import ConfigError

from .config import TrainJob, load_train_config
from .shards import ExtractStats, TokenStore, _merge, _write_chunk, store_id

VERSION = 1
CHUNK = 4096  # items per shard file in the pack


# ------------------------------------------------------------------ building
def _encoder(job: TrainJob, utts, reporter):
    """(encoder, identity, sample rate, {"codec" | "tokenizer": its folder to copy, None when shipped},
    {token array: frames per second})."""
    if job.model == "valle":
        from .run import _make_codec
        from .shards import codec_encoder

        codec = _make_codec(job, utts, reporter)
        # the folder the codec was loaded from, copied byte for byte (its identity names the weights' sha256)
        own = {"shipped-teacher": None, "encodec_24khz": None, "checkpoint": job.codec.checkpoint}.get(
            job.codec.kind, job.out / "codec")
        return (codec_encoder(codec), {"tokens": "codec", **codec.identity()}, codec.sample_rate, {"codec": own},
                {"codes": float(codec.frame_rate)})
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer

    from .shards import halle_encoder
    from .shipped import shipped_dir

    tok = MReQTokenizer.load(job.tokenizer)
    own = None if job.tokenizer == shipped_dir("shipped-mreq") else job.tokenizer
    return (halle_encoder(tok), {"tokens": "mreq", **tok.identity()}, tok.sample_rate, {"tokenizer": own},
            {"ar": float(tok.rates[0]), "nar": float(tok.rates[-1])})


def build_pack(job: TrainJob, out: str | Path, reporter=None, speak_audio: bool = False) -> dict[str, Any]:
    """Write the pack of `job` into `out` (replacing one there); returns its pack.json.

    `speak_audio`: also copy the held-out wavs (the [speak] check's prompts) when the job has
    a [speak] table; off by default since they weigh more than the tokens of a long-clip corpus."""
    from halle_bench.data import read_manifest
    from halle_bench.errors import UtteranceError
    from halle_bench.progress import NullReporter

    from . import stages as S
    from .prepare import split_items, tokenize

    reporter = reporter or NullReporter()
    if job.model not in ("valle", "halle"):
        raise job.error(f"a token pack is for valle / halle trainings, not {job.model!r}", "model")
    if job.data.pack is not None and job.data.manifest == job.data.pack / "items.jsonl":
        raise job.error("[data]: building a pack needs the `manifest` it is made from", "pack", "[data]")
    utts = [u for u in read_manifest(job.data.manifest, job.data.format) if u.audio is not None]
    if job.data.limit is not None:
        utts = utts[: job.data.limit]
    if not utts:
        raise ConfigError("the manifest has no utterances with audio", job.data.manifest)
    enc, identity, sr, own, rates = _encoder(job, utts, reporter)
    tok = tokenize(utts, enc, identity, S.tokens_root(job), sr, job.data.extract_batch, reporter)
    errors = list(tok.errors)
    fe = TextFrontend()
    keep = [u for u in utts if u.id in tok.shas]
    ids: dict[str, list[int]] = {}
    for s in range(0, len(keep), 256):  # as prepare.examples: one espeak call per 256, per item on error
        part = keep[s:s + 256]
        try:
            for u, e in zip(part, fe.encode_batch([u.text for u in part])):
                ids[u.id] = e.ids
        except (UtteranceError, ValueError, RuntimeError):
            for u in part:
                try:
                    ids[u.id] = fe.encode(u.text).ids
                except (UtteranceError, ValueError, RuntimeError) as e:
                    errors.append(f"{u.id}: {e}")
    keep = [u for u in keep if u.id in ids]
    # items the training leaves out anyway (longer than max_seconds in every array it reads)
    # stay out of the pack; the held-out ones stay in (validation is not length-capped), and
    # since they have the smallest id hashes of all, the split over the rest is unchanged
    _, held = S.split(job, keep, split_items, int(job.train.get("seed", 0)))
    held_ids = {u.id for u in held}
    if job.data.max_seconds is not None:
        fits = lambda u: any(tok.store.length(tok.shas[u.id], n) <= job.data.max_seconds * r for n, r in rates.items())
        dropped = [u for u in keep if u.id not in held_ids and not fits(u)]
        keep = [u for u in keep if u.id in held_ids or fits(u)]
        reporter.log(f"pack: {len(dropped)} items longer than max_seconds = {job.data.max_seconds} left out")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "tokens" / store_id(identity) / "shards").mkdir(parents=True)
    d = out / "tokens" / store_id(identity)
    (d / "identity.json").write_text(json.dumps(identity, indent=2, sort_keys=True, default=str))
    names = sorted(tok.store.items[tok.shas[keep[0].id]]["arrays"]) if keep else []
    shas = list(dict.fromkeys(tok.shas[u.id] for u in keep))
    for c in range(0, len(shas), CHUNK):
        part = shas[c:c + CHUNK]
        _write_chunk(d / "shards", f"pack{c // CHUNK:05d}",
                     {h: {n: np.asarray(tok.store.get(h, n)) for n in names} for h in part}, {})
    _merge(d)
    with open(out / "items.jsonl", "w") as f:
        for u in keep:
            f.write(json.dumps({"id": str(u.id), "text": u.text, "speaker": u.speaker, "sha256": tok.shas[u.id],
                                "ids": ids[u.id]}) + "\n")
    for what, folder in own.items():
        if folder is not None:
            shutil.copytree(folder, out / what)
    val_ids: list[str] = []
    if job.speak is not None and speak_audio:  # the speak check's prompts and references
        (out / "val").mkdir()
        for u in held:
            shutil.copyfile(u.audio, out / "val" / f"{u.id}.wav")
            val_ids.append(str(u.id))
    meta = {"version": VERSION, "model": job.model, "identity": identity, "store": store_id(identity),
            "items": len(keep), "arrays": names, "frontend": fe.version, "n_symbols": len(fe.symbols),
            "encoder": {k: (None if v is None else k) for k, v in own.items()}, "val_audio": val_ids,
            "config": str(job.path), "manifest": str(job.data.manifest), "skipped": errors}
    (out / "pack.json").write_text(json.dumps(meta, indent=2, default=str))
    reporter.log(f"pack: {len(keep)} items, {len(errors)} skipped, {_size(out) / 2**20:.1f} MiB -> {out}")
    return meta


def _size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


# ------------------------------------------------------------------ reading
@dataclass
class Pack:
    dir: Path
    meta: dict[str, Any]
    rows: list[dict[str, Any]]

    @classmethod
    def open(cls, job: TrainJob) -> "Pack":
        d = job.data.pack
        p = d / "pack.json"
        if not p.exists():
            raise job.error(f"[data]: {d} holds no token pack (build it with "
                            f"`python -m halle_bench.baselines.training.pack {job.path}`)", "pack", "[data]")
        try:
            meta = json.loads(p.read_text())
            rows = [json.loads(line) for line in (d / "items.jsonl").read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"damaged token pack: {e}", p) from None
        if meta.get("version") != VERSION or meta.get("model") != job.model:
            raise job.error(f"[data]: the pack in {d} is a {meta.get('model')!r} pack of version "
                            f"{meta.get('version')}, this is a {job.model!r} training (version {VERSION})",
                            "pack", "[data]")
        return cls(d, meta, rows)

    def utterances(self):
        """The pack's items as harness utterances (audio: the held-out wav when the pack has one)."""
        from halle_bench.data.utterance import Utterance

        return [Utterance(id=r["id"], text=r["text"], speaker=r.get("speaker"),
                          audio=(self.dir / "val" / f"{r['id']}.wav") if r["id"] in set(self.meta.get("val_audio", []))
                          else None, source=f"{self.dir / 'items.jsonl'}:{n + 1}")
                for n, r in enumerate(self.rows)]

    def frontend(self):
        return PackFrontend({r["text"]: r["ids"] for r in self.rows}, self.meta.get("frontend"))

    def folder(self, what: str) -> Path | None:
        """The pack's own codec/ or tokenizer/ folder, None when the package ships it."""
        if not self.meta.get("encoder", {}).get(what):
            return None
        if not (self.dir / what).is_dir():
            raise ConfigError(f"damaged token pack: its {what}/ folder is missing", self.dir / "pack.json")
        return self.dir / what

    def tokenized(self, job: TrainJob, identity: dict[str, Any]):
        """prepare.Tokenized over the pack's store, after checking the encoder's identity."""
        from .prepare import Tokenized

        want = json.loads(json.dumps(identity, sort_keys=True, default=str))
        if store_id(identity) != self.meta["store"] or want != self.meta["identity"]:
            raise job.error(f"[data]: the pack in {self.dir} holds tokens of another encoder "
                            f"({self.meta['identity']}) than this training's ({want})", "pack", "[data]")
        store = TokenStore(self.dir / "tokens" / self.meta["store"])
        shas = {r["id"]: r["sha256"] for r in self.rows if r["sha256"] in store}
        missing = [f"{r['id']}: not in the pack's token store" for r in self.rows if r["id"] not in shas]
        return Tokenized(store, shas, missing, ExtractStats(reused=len(shas), errors={}), 0)


class PackFrontend(TextFrontend):
    """The text frontend answering from the ids stored in a pack (no espeak); texts it does
    not hold (the speak check's synthesis) go to espeak as usual."""

    def __init__(self, known: dict[str, list[int]], version: str | None = None):
        super().__init__()
        if version is not None and version != self.version:
            raise ValueError(f"the pack's text ids are of frontend {version}, this one is {self.version}")
        self.known = known

    def encode_batch(self, texts: list[str]) -> list[Encoded]:
        if all(t in self.known for t in texts):
            return [Encoded(list(self.known[t]), [self.symbols[i] for i in self.known[t]], "") for t in texts]
        return super().encode_batch(texts)


# ------------------------------------------------------------------ the GPU config
def gpu_config(text: str, pack: str) -> str:
    """The text of a training config that reads `pack` and has no [speak] table (a GPU machine
    has neither the ASR weights nor, necessarily, espeak-ng: run the speak check with
    diagnose.py afterwards). Comments and every other key are kept."""
    out: list[str] = []
    table = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and not s.startswith("[["):
            table = s.split("]")[0].strip("[ ")
        if table == "speak":
            continue
        if table == "data" and s.split("=")[0].strip() == "pack":
            continue
        out.append(line)
        if table == "data" and s.startswith("[data]"):
            out.append(f"pack = {json.dumps(pack)}   # the token pack (pack.py): no corpus audio needed")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m halle_bench.baselines.training.pack",
                                 description="Build the token pack of a VALL-E / HALL-E training config.")
    ap.add_argument("config")
    ap.add_argument("out", nargs="?", help="the pack folder (default: the config's [data] pack)")
    ap.add_argument("--speak-audio", action="store_true",
                    help="also copy the held-out wavs, so that the pack's training can run [speak]")
    ap.add_argument("--write-config", metavar="TOML",
                    help="also write a copy of the config that trains from this pack, without [speak]")
    a = ap.parse_args(argv)
    from halle_bench.progress import NullReporter

    class _Print(NullReporter):
        def log(self, msg: str) -> None:
            print(msg, flush=True)

    try:
        job = load_train_config(a.config)
        out = Path(a.out) if a.out else job.data.pack
        if out is None:
            raise job.error("no pack folder: give OUT or set [data] pack", "manifest", "[data]")
        build_pack(job, out, _Print(), speak_audio=a.speak_audio)
        if a.write_config:
            dst = Path(a.write_config)
            rel = Path(os_relpath(out.resolve(), dst.resolve().parent))
            dst.write_text(gpu_config(job.text, rel.as_posix()))
            print(f"config reading the pack: {dst}")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def os_relpath(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)




# ------------------------------------------------------------------ what run.py calls
def frontend_for(job: TrainJob):
    """The text frontend of a training: the pack's stored ids, or espeak-ng."""
    if job.data.pack is None:
        return TextFrontend()
    try:
        return Pack.open(job).frontend()
    except ValueError as e:
        raise job.error(f"[data]: {e}", "pack", "[data]") from None


def tokenize_for(job: TrainJob, utts, encoder, identity: dict[str, Any], sample_rate: int, reporter=None):
    """prepare.tokenize, or the pack's tokens (checked against `identity`)."""
    if job.data.pack is not None:
        return Pack.open(job).tokenized(job, identity)
    from . import stages as S
    from .prepare import tokenize

    return tokenize(utts, encoder, identity, S.tokens_root(job), sample_rate, job.data.extract_batch, reporter)


def encoder_folder(job: TrainJob, what: str) -> Path | None:
    """The pack's own codec/ or tokenizer/ (None without a pack or when the package ships it)."""
    return None if job.data.pack is None else Pack.open(job).folder(what)


__all__ = ["build_pack", "Pack", "PackFrontend", "gpu_config", "main", "frontend_for", "tokenize_for",
           "encoder_folder"]


if __name__ == "__main__":
    sys.exit(main())
