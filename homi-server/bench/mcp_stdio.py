"""search_memories over stdio, as a desktop client sees it: the official
Python MCP SDK starts `homi mcp` with the local embedder (no provider at all:
nothing else to install or run), adds N memories with add_memory, then times
search_memories calls. A call's time is the client's round trip: the SDK,
the pipe, the door, the query's embedding by the local model, and the hybrid
search.

  python homi-server/bench/mcp_stdio.py --homi target/release/homi \\
      --model-dir "$(bash scripts/model.sh)" [--memories 1000] [--searches 200]

Prints one JSON object.
"""

import argparse
import asyncio
import json
import os
import tempfile
import time

from mcp import Client, StdioServerParameters

SUBJECTS = ["tea", "hiking", "Lisbon", "jazz", "Rust", "cats", "pizza", "yoga", "chess", "the garden",
            "sailing", "the piano", "Tokyo", "running", "photography", "baking"]
VERBS = ["loves", "is learning", "talked about", "went to a class on", "bought a book about", "dreams of"]


def fact(i):
    return f"Alex {VERBS[i % len(VERBS)]} {SUBJECTS[(i // len(VERBS)) % len(SUBJECTS)]} (note {i})"


def percentile(values, p):
    values = sorted(values)
    return values[round((len(values) - 1) * p)]


async def main(args):
    work = tempfile.mkdtemp()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", work),
        "HOMI_EMBEDDER": "local",
        "HOMI_EMBEDDING_MODEL_DIR": args.model_dir,
        "DATABASE_URL": f"sqlite://{work}/homi.db",
        "RUST_LOG": "warn",
    }
    params = StdioServerParameters(command=args.homi, args=["mcp", "--user", "bench"], env=env)
    async with Client(params, mode="legacy") as c:
        start = time.perf_counter()
        for i in range(args.memories):
            r = await c.call_tool("add_memory", {"text": fact(i), "infer": False})
            assert not r.is_error, r
        load_s = time.perf_counter() - start
        for i in range(5):
            await c.call_tool("search_memories", {"query": "warm up", "top_k": 10})
        took = []
        for i in range(args.searches):
            query = f"What does Alex think about {SUBJECTS[i % len(SUBJECTS)]}?"
            start = time.perf_counter()
            r = await c.call_tool("search_memories", {"query": query, "top_k": 10})
            took.append((time.perf_counter() - start) * 1000)
            assert not r.is_error and r.structured_content["results"], r
    print(json.dumps({
        "memories": args.memories, "searches": args.searches, "add_memory_per_s": args.memories / load_s,
        "search_p50_ms": percentile(took, 0.5), "search_p95_ms": percentile(took, 0.95),
    }))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--homi", required=True, help="the homi binary")
    p.add_argument("--model-dir", required=True, help="the local embedding model's directory")
    p.add_argument("--memories", type=int, default=1000)
    p.add_argument("--searches", type=int, default=200)
    asyncio.run(main(p.parse_args()))
