"""The retrieval benchmark on LoCoMo conversations (the issue's protocol).

Each conversation is one user (its file name without .json). Every turn is one
memory, added with infer=False in conversation order: the text
"{speaker}: {text}" (plus " [shares {blip_caption}]" when the turn has a
caption), metadata {"dia_id": ...} and timestamp= the session's date. Every
question of categories 1-4 is searched in its own conversation with top_k=20.

    python locomo.py run DIR --out rankings.json [--modes hybrid,semantic,keyword] [--smoke]
        [--database-url postgres://...  (an empty database; default: a new SQLite file)]
    python locomo.py score DIR rankings.json [more.json ...]

`run` goes through the homi Python package (the local embedder unless the
environment says otherwise) and writes, per mode, the dia_ids found for every
question plus timings; the Rust half (homi-core/benches/retrieval.rs) writes
the same shape. `score` prints recall@k and hit@k (k = 1, 5, 10, 20), overall
and per category, as a markdown table and one JSON line.
"""

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import time

KS = (1, 5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def session_time(text):
    """'1:56 pm on 8 May, 2023' -> an aware UTC datetime."""
    t = dt.datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")
    return t.replace(tzinfo=dt.timezone.utc)


def evidence_ids(evidence):
    ids = []
    for e in evidence:
        ids.extend(x for x in re.split(r"[;,\s]+", e) if x)
    return ids


def load(data_dir, smoke=False):
    """[(user, turns, questions)]; turns: (text, dia_id, iso time)."""
    out = []
    for name in sorted(os.listdir(data_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(data_dir, name)) as f:
            conv = json.load(f)
        c = conv.get("conversation", conv)
        sessions = sorted(
            (int(k.split("_")[1]), k) for k in c if re.fullmatch(r"session_\d+", k)
        )
        turns = []
        for n, key in sessions:
            when = session_time(c[f"session_{n}_date_time"]).isoformat()
            for t in c[key]:
                text = f"{t['speaker']}: {t['text']}"
                if t.get("blip_caption"):
                    text += f" [shares {t['blip_caption']}]"
                turns.append((text, t["dia_id"], when))
        questions = [
            (q["question"], evidence_ids(q.get("evidence", [])), q["category"])
            for q in conv["qa"]
            if q.get("category") in CATEGORIES
        ]
        if smoke:
            turns, questions = turns[:60], [q for q in questions if q[1]][:10]
        out.append((name[: -len(".json")], turns, questions))
        if smoke and len(out) == 2:
            break
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))] if xs else 0.0


def run(args):
    import homi

    convs = load(args.data, args.smoke)
    store = tempfile.mkdtemp(prefix="homi-locomo-")
    db = args.database_url or f"sqlite://{os.path.join(store, 'homi.db')}"
    os.environ["DATABASE_URL"] = db
    os.environ["HOMI_DATABASE_URL"] = db
    memory = homi.Memory()
    modes = args.modes.split(",")
    turns = sum(len(t) for _, t, _ in convs)
    start = time.perf_counter()
    for user, ts, _ in convs:
        for text, dia, when in ts:
            memory.add(text, user_id=user, metadata={"dia_id": dia}, infer=False, timestamp=when)
    load_s = time.perf_counter() - start
    door = "python" if not args.database_url else "python-" + db.split(":", 1)[0]
    result = {"door": door, "turns": turns, "load_s": load_s, "modes": {}}
    for mode in modes:
        found, lat = [], []
        for user, _, qs in convs:
            for q, _, _ in qs:
                t0 = time.perf_counter()
                r = memory.search(q, user_id=user, top_k=20, mode=mode)
                lat.append((time.perf_counter() - t0) * 1000.0)
                found.append([m["metadata"].get("dia_id") for m in r["results"]])
        result["modes"][mode] = {
            "found": found,
            "p50_ms": statistics.median(lat),
            "p95_ms": pct(lat, 0.95),
        }
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(f"{args.out}: {turns} turns loaded in {load_s:.1f} s; modes {modes}", file=sys.stderr)


def metrics(convs, found):
    """{"all": {...}, "1": {...}, ...} of recall@k / hit@k."""
    rows = []
    i = 0
    for _, _, qs in convs:
        for _, ev, cat in qs:
            rows.append((ev, cat, found[i]))
            i += 1
    if i != len(found):
        raise SystemExit(f"{len(found)} rankings for {i} questions")
    out = {}
    for key in ["all"] + [str(c) for c in CATEGORIES]:
        sel = [(ev, f) for ev, cat, f in rows if ev and (key == "all" or str(cat) == key)]
        m = {"questions": len(sel)}
        for k in KS:
            rec = [len(set(ev) & set(f[:k])) / len(set(ev)) for ev, f in sel]
            hit = [1.0 if set(ev) & set(f[:k]) else 0.0 for ev, f in sel]
            m[f"recall@{k}"] = statistics.mean(rec) if rec else 0.0
            m[f"hit@{k}"] = statistics.mean(hit) if hit else 0.0
        out[key] = m
    return out


def score(args):
    convs = load(args.data, args.smoke)
    print("| door | mode | questions | " + " | ".join(f"R@{k}" for k in KS) + " | "
          + " | ".join(f"H@{k}" for k in KS) + " | p50 ms | p95 ms | load s |")
    print("|" + "---|" * (5 + 2 * len(KS) + 1))
    summary = {}
    for path in args.rankings:
        with open(path) as f:
            r = json.load(f)
        for mode, v in r["modes"].items():
            m = metrics(convs, v["found"])
            summary[f"{r['door']}/{mode}"] = {**m, "p50_ms": v["p50_ms"], "p95_ms": v["p95_ms"], "load_s": r["load_s"]}
            for key, label in [("all", "all")] + [(str(c), f"{c} {n}") for c, n in CATEGORIES.items()]:
                mm = m[key]
                timing = f"{v['p50_ms']:.2f} | {v['p95_ms']:.2f} | {r['load_s']:.1f}" if key == "all" else " | | "
                print(f"| {r['door']} | {mode} {'' if key == 'all' else '(' + label + ')'} | {mm['questions']} | "
                      + " | ".join(f"{mm[f'recall@{k}']:.3f}" for k in KS) + " | "
                      + " | ".join(f"{mm[f'hit@{k}']:.3f}" for k in KS) + f" | {timing} |")
    print(json.dumps(summary))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("data")
    r.add_argument("--out", required=True)
    r.add_argument("--modes", default="keyword,semantic,hybrid")
    r.add_argument("--smoke", action="store_true")
    r.add_argument("--database-url", default="", help="the store (an empty database); default: a new SQLite file")
    s = sub.add_parser("score")
    s.add_argument("data")
    s.add_argument("rankings", nargs="+")
    s.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    run(a) if a.cmd == "run" else score(a)


if __name__ == "__main__":
    main()
