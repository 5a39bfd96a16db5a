"""ASR engines behind one protocol (`base.ASRBackend`): ctranslate2, openai-whisper, transformers."""

from .base import BACKENDS, ASRBackend, Decoded, backend_names, compression_ratio, get_backend, register_backend

__all__ = ["BACKENDS", "ASRBackend", "Decoded", "backend_names", "compression_ratio", "get_backend", "register_backend"]
