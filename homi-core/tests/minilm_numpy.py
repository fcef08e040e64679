"""An independent sentence embedding: a BERT forward pass in numpy (float64),
over the same files the local embedder reads, for homi-core/tests/it/provider.rs.

    python minilm_numpy.py MODEL_DIR < sentences.json > vectors.json

Reads model.safetensors with the safetensors numpy API and tokenizer.json with
the `tokenizers` package; pools as 1_Pooling/config.json says (mean or CLS),
cuts texts to sentence_bert_config.json's max_seq_length, L2-normalises.
Each sentence runs alone (no padding), so batching cannot hide a mistake.
"""

import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def main():
    model_dir = sys.argv[1]
    sentences = json.load(sys.stdin)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    max_len = min(config["max_position_embeddings"], 512)
    sbert = os.path.join(model_dir, "sentence_bert_config.json")
    if os.path.exists(sbert):
        with open(sbert) as f:
            max_len = min(json.load(f).get("max_seq_length") or max_len, max_len)
    cls_pooling = False
    pooling = os.path.join(model_dir, "1_Pooling", "config.json")
    if os.path.exists(pooling):
        with open(pooling) as f:
            p = json.load(f)
        cls_pooling = p.get("pooling_mode_cls_token") and not p.get("pooling_mode_mean_tokens")

    raw = load_file(os.path.join(model_dir, "model.safetensors"))
    prefix = "bert." if any(k.startswith("bert.") for k in raw) else ""
    w = {k[len(prefix):]: v.astype(np.float64) for k, v in raw.items() if k.startswith(prefix)}
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = hidden // heads

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_len)

    def linear(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    out = []
    for sentence in sentences:
        enc = tokenizer.encode(sentence)
        ids = np.array(enc.ids)
        types = np.array(enc.type_ids)
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        for i in range(config["num_hidden_layers"]):
            l = f"encoder.layer.{i}."
            q = linear(x, l + "attention.self.query").reshape(n, heads, head_dim).transpose(1, 0, 2)
            k = linear(x, l + "attention.self.key").reshape(n, heads, head_dim).transpose(1, 0, 2)
            v = linear(x, l + "attention.self.value").reshape(n, heads, head_dim).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(1, 0, 2).reshape(n, hidden)
            a = layer_norm(
                linear(ctx, l + "attention.output.dense") + x,
                w[l + "attention.output.LayerNorm.weight"],
                w[l + "attention.output.LayerNorm.bias"],
                eps,
            )
            inter = gelu(linear(a, l + "intermediate.dense"))
            x = layer_norm(
                linear(inter, l + "output.dense") + a,
                w[l + "output.LayerNorm.weight"],
                w[l + "output.LayerNorm.bias"],
                eps,
            )
        pooled = x[0] if cls_pooling else x.mean(0)
        pooled = pooled / max(np.linalg.norm(pooled), 1e-12)
        out.append([float(v) for v in pooled])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
