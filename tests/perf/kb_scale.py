"""Knowledge-base latency at scale: 100,000 outcomes and 10,000 entries. Prints one JSON line.

Entry text draws words from a 3,000-word vocabulary with Zipf frequencies, like prose;
queries are three content words (not the most common few), like a specialist's query.
Goal: p50 under 20 ms for both retrieval and priors.
Run: .venv/bin/python tests/perf/kb_scale.py
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arbor.kb.db import transaction  # noqa: E402
from arbor.kb.models import Change, Context  # noqa: E402
from arbor.kb.priors import priors  # noqa: E402
from arbor.kb.retrieve import retrieve  # noqa: E402
from arbor.kb.store import open_store  # noqa: E402
from arbor.tools.stats import percentile  # noqa: E402

STACKS = ["vllm", "sglang", "llamacpp"]
HARDWARE = [f"hw{i}" for i in range(20)]
FAMILIES = [f"family{i}" for i in range(15)]
CATEGORIES = ["config", "dispatch", "kernel", "compiler", "communication", "framework"]
KNOBS = [f"knob_{i}" for i in range(60)]
VOCAB = [f"w{i}" for i in range(3000)]
ZIPF = [1.0 / (rank + 1) ** 1.1 for rank in range(len(VOCAB))]


def prose(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(VOCAB, weights=ZIPF, k=n))


def query_words(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCAB[30:]) for _ in range(3))
RESULTS = ["kept", "reverted", "reverted", "crashed", "invalid"]


def populate(db, rng: random.Random, outcomes: int, entries: int) -> None:
    now = time.time()
    rows = []
    for _ in range(outcomes):
        result = rng.choice(RESULTS)
        rows.append({
            "id": uuid.uuid4().hex, "campaign": f"c{rng.randrange(500)}", "stack": rng.choice(STACKS),
            "model": None, "model_family": rng.choice(FAMILIES), "hardware": rng.choice(HARDWARE),
            "framework_version": None, "driver_version": None, "category": rng.choice(CATEGORIES), "layer": None,
            "knob": rng.choice(KNOBS), "value": str(rng.choice([1, 2, 4, 8, 16, 32])), "patch_summary": None,
            "result": result, "gain": rng.uniform(-0.2, 0.5) if result != "crashed" else None, "gain_low": None,
            "gain_high": None, "cost_s": 60.0, "diagnosis": None, "created_at": now})
    with transaction(db):
        db["outcomes"].insert_all(rows, batch_size=5000)
    erows = []
    for i in range(entries):
        text = prose(rng, 60)
        erows.append({
            "id": uuid.uuid4().hex, "key": f"k{i}", "kind": rng.choice(["technique", "failure_mode", "parameter"]),
            "title": prose(rng, 8), "body": text, "stack": rng.choice(STACKS),
            "model_family": rng.choice(FAMILIES), "hardware": rng.choice(HARDWARE), "framework_version": None,
            "driver_version": None, "category": rng.choice(CATEGORIES), "layer": None, "knob": rng.choice(KNOBS),
            "value": str(rng.choice([1, 2, 4, 8, 16, 32])), "constraint_text": None, "stats": "{}",
            "outcome_ids": "[]", "source": "perf", "created_at": now, "updated_at": now})
    with transaction(db):
        db["entries"].insert_all(erows, batch_size=2000)


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    rng = random.Random(0)
    folder = Path(tempfile.mkdtemp(prefix="arbor-kb-scale-"))
    db = open_store(folder / "kb.sqlite")
    t0 = time.perf_counter()
    populate(db, rng, 100_000, 10_000)
    build_s = time.perf_counter() - t0

    def one_retrieval() -> None:
        ctx = Context(stack=rng.choice(STACKS), hardware=rng.choice(HARDWARE), model_family=rng.choice(FAMILIES))
        retrieve(db, query_words(rng), ctx, rng.choice(CATEGORIES), rng.choice(KNOBS))

    def one_prior() -> None:
        ctx = Context(stack=rng.choice(STACKS), hardware=rng.choice(HARDWARE), model_family=rng.choice(FAMILIES))
        priors(db, ctx, Change(category=rng.choice(CATEGORIES), knob=rng.choice(KNOBS),
                               value=rng.choice([1, 2, 4, 8, 16, 32])))

    timed(one_retrieval, 20)
    timed(one_prior, 20)  # warm the page cache before measuring
    retrieval, prior = timed(one_retrieval, 300), timed(one_prior, 300)
    print(json.dumps({
        "outcomes": 100_000, "entries": 10_000 + 12, "build_s": round(build_s, 1),
        "retrieval_ms_p50": round(percentile(retrieval, 50), 2),
        "retrieval_ms_p99": round(percentile(retrieval, 99), 2),
        "priors_ms_p50": round(percentile(prior, 50), 2), "priors_ms_p99": round(percentile(prior, 99), 2),
    }))


if __name__ == "__main__":
    main()
