"""What the `valle` and `halle` system kinds share: a model checkpoint folder,
sampling settings, strict config keys and a cache key that carries the sha256 of
everything the checkpoint is made of (so a retrained checkpoint at the same path is
never mistaken for the old one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from halle_bench.errors import ConfigError
from halle_bench.systems.base import BaseSystem

from .sampling import SamplingOptions

COMMON_KEYS = frozenset({"name", "kind", "checkpoint", "top_k", "top_p", "temperature", "max_len_ratio",
                         "max_new_tokens", "batch_size", "device"})


class CheckpointSystem(BaseSystem):
    """Base of the model systems. Subclasses set `kind`, `extra_keys`,
    `default_max_len_ratio` and, when the checkpoint spans more files than the model
    folder's weights + config, `extra_checkpoint_files` (paths inside the folder)."""

    extra_keys: ClassVar[frozenset[str]] = frozenset()
    default_max_len_ratio: ClassVar[float] = 16.0
    extra_checkpoint_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, config: dict[str, Any], base_dir: Path):
        super().__init__(name, config, base_dir)
        known = COMMON_KEYS | self.extra_keys
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"system '{name}': unknown keys {unknown}; known: {sorted(known)}")
        if not config.get("checkpoint"):
            raise ConfigError(f"system '{name}': kind '{self.kind}' needs checkpoint = <folder>")
        self.checkpoint = self._path(config["checkpoint"])
        try:
            self.opts = SamplingOptions(
                top_k=int(config.get("top_k", 50)),
                top_p=float(config.get("top_p", 1.0)),
                temperature=float(config.get("temperature", 1.0)),
                max_len_ratio=float(config.get("max_len_ratio", self.default_max_len_ratio)),
                max_new_tokens=int(config["max_new_tokens"]) if config.get("max_new_tokens") else None,
            )
            self.batch_size = int(config.get("batch_size", 1))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"system '{name}': bad setting: {e}") from None
        self.model = None
        self._sha: str | None = None

    def _path(self, p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.base_dir / q)

    def checkpoint_extra_files(self) -> tuple[str, ...]:
        """The files besides weights + config that make up this checkpoint."""
        return self.extra_checkpoint_files

    def checkpoint_sha256(self) -> str:
        """Digest of the folder's weights + config, and of `extra_checkpoint_files`."""
        if self._sha is None:
            import hashlib

            from halle_bench.audio import sha256_file

            from .checkpoint import CheckpointError, checkpoint_sha256

            try:
                digest = checkpoint_sha256(self.checkpoint)
                extra = self.checkpoint_extra_files()
                if extra:
                    h = hashlib.sha256(digest.encode())
                    for rel in extra:
                        p = self.checkpoint / rel
                        if not p.exists():
                            raise CheckpointError(f"checkpoint {self.checkpoint}: {rel} not found")
                        h.update(sha256_file(p).encode())
                    digest = h.hexdigest()
            except CheckpointError as e:
                raise ConfigError(f"system '{self.name}': {e}") from None
            self._sha = digest
        return self._sha

    def cache_key(self) -> dict[str, Any]:
        key = super().cache_key()
        key.pop("device", None)  # where it runs does not change what it should produce
        key.pop("batch_size", None)  # per-item generators: batching does not change the output
        key["checkpoint"] = str(self.checkpoint)
        key["checkpoint_sha256"] = self.checkpoint_sha256()
        return key

    def models(self) -> list[dict[str, str]]:
        return [{"name": f"{self.kind}:{self.checkpoint}", "sha256": self.checkpoint_sha256()}]

    def close(self) -> None:
        self.model = None
