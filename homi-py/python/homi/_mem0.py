"""Bringing mem0's memories into Homi: `homi.import_mem0(config)`.

mem0 keeps its memories in a vector store and their history in `history.db`.
Its default store, Qdrant in local mode, is pickled Python objects, so this
package reads it with the `qdrant-client` mem0 installed (it reads a Qdrant
server the same way) and hands the points to Homi's core, which reads
`history.db`, maps and imports them. mem0's pgvector and Supabase
stores are read by the core directly.
"""

import os
from typing import Any, Dict, List, Optional

from homi import _homi
from homi.errors import ValidationError

_SERVER_KEYS = ("host", "port", "url", "api_key")


def _plain(config: Any) -> Dict[str, Any]:
    if config is None:
        return {}
    if hasattr(config, "model_dump") and not isinstance(config, dict):
        config = config.model_dump()
    if not isinstance(config, dict):
        raise ValidationError("config: must be mem0's configuration dict (or its MemoryConfig)")
    return config


def _qdrant_points(store: Dict[str, Any]) -> List[Dict[str, Any]]:
    try:
        from qdrant_client import QdrantClient
    except ImportError as e:  # pragma: no cover - mem0 installs it
        raise ValidationError(
            "vector_store: reading mem0's Qdrant store needs qdrant-client (pip install qdrant-client; mem0 installs it)"
        ) from e
    collection = store.get("collection_name") or "mem0"
    server = {k: store[k] for k in _SERVER_KEYS if store.get(k) is not None}
    if server:
        if store.get("https") is not None:
            server["https"] = store["https"]
        client = QdrantClient(**server)
    else:
        path = store.get("path") or "/tmp/qdrant"
        if not os.path.isdir(os.path.join(path, "collection", collection)):
            raise ValidationError(f"vector_store.config.path: {path} holds no mem0 collection '{collection}'")
        try:
            client = QdrantClient(path=path)
        except RuntimeError as e:
            raise ValidationError(
                f"vector_store.config.path: {path} is open elsewhere (another process, or a mem0 Memory in this one): {e}"
            ) from e
    points: List[Dict[str, Any]] = []
    try:
        offset = None
        while True:
            batch, offset = client.scroll(
                collection_name=collection, limit=256, offset=offset, with_payload=True, with_vectors=True
            )
            for p in batch:
                vector: Any = p.vector
                if isinstance(vector, dict):
                    # mem0 names its dense vector "" (beside a sparse "bm25").
                    vector = vector.get("")
                points.append({
                    "id": str(p.id),
                    "vector": [float(x) for x in vector] if isinstance(vector, list) else None,
                    "payload": p.payload or {},
                })
            if offset is None:
                break
    finally:
        client.close()
    return points


def import_mem0(config: Any = None, *, into: Optional[Any] = None) -> Dict[str, Any]:
    """Copies the memories mem0 kept with `config` (the dict, or the
    MemoryConfig, given to mem0's `Memory.from_config`; None: mem0's
    defaults) into Homi, with their ids, texts, scopes, metadata, timestamps
    and history. `into` is the Homi Memory to fill; by default the one
    `homi.Memory.from_config(config)` opens (for a Qdrant `path`,
    `<path>/homi.db`). mem0's vectors are kept when Homi embeds with the same
    model, and the texts embedded again otherwise. Running it again adds
    nothing. Returns the report: `{read, imported, already_present,
    duplicates, embedded, invalid}`."""
    cfg = _plain(config)
    section = cfg.get("vector_store") or {}
    provider = section.get("provider") or "qdrant"
    store = section.get("config") or {}
    target = into if into is not None else _homi.Memory.from_config(cfg)
    if hasattr(target, "_native"):
        raise ValidationError("into: pass a homi.Memory (import_mem0 runs synchronously)")
    if provider in ("pgvector", "supabase"):
        # The core reads these itself, with mem0's history.
        return target.import_mem0_postgres(cfg)
    if provider != "qdrant":
        raise ValidationError(
            f"vector_store.provider: '{provider}' is not a store Homi imports from; "
            "it reads mem0's Qdrant (local or a server), pgvector and Supabase stores"
        )
    embedder_only = {"embedder": cfg["embedder"]} if cfg.get("embedder") else {}
    history = _homi.read_mem0_history(cfg)
    return target.import_mem0_points(_qdrant_points(store), history, embedder_only)
