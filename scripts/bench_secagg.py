"""Secure aggregation's cost: bytes and seconds per client against clients per round and the
share of clients that drop out after masking, on the real protocol (fedrec.secagg: X25519, HKDF,
AES-CTR masks, AES-GCM relayed Shamir shares), and the paper's communication expansion.

Each measured round masks random vectors the size of the ML-100K model padded to whole tables
(what ``padding: all`` uploads), checks that the unmasked sum equals the plain one bit for bit,
and counts the bytes every client sends and receives. Bonawitz et al. (CCS 2017) report 1.73x
expansion for 2^10 users and 2^20-dimensional 16-bit vectors; the same configuration is priced
with the protocol's own message sizes (``client_bytes``, tested equal to what a run counts).

    .venv/bin/python scripts/bench_secagg.py           # ~10 min on 2 cores
    .venv/bin/python scripts/bench_secagg.py --quick   # seconds
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from _bench_common import format_table, line_chart, machine, write_json

from fedrec.secagg import FixedPoint, SecAggAbort, client_bytes, neighbours, run_round

PAPER = {"users": 1024, "dim": 2**20, "input_bits": 16, "expansion": 1.73}


def ml100k_dims() -> tuple[int, float]:
    """(length of the padded secure-aggregation vector of the tuned ML-100K model, mean plain sparse
    upload of an ML-100K client in bytes)."""
    from data_pipeline.datasets import dataset_path
    from fedrec.client.layout import ModelLayout
    from fedrec.config import load_config
    from fedrec.model import build_model
    from fedrec.pipeline import ModelShapes
    from fedrec.runtime import load_federated_data
    from fedrec.runtime.facts import ClientFacts, client_tiers
    from fedrec.secagg import UpdateCodec

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "ml100k_fedyogi_tuned.yaml",
                      **{"data.path": str(dataset_path("ml-100k"))})
    data = load_federated_data(cfg)
    state = {k: v.detach() for k, v in build_model(data.train.spec, cfg.model, seed=0).state_dict().items()}
    layout = ModelLayout.of(state, data.train.spec)
    model = ModelShapes.of(state, layout.tables)
    import torch

    dim = UpdateCodec(model, {n: torch.arange(model.shapes[n][0]) for n in model.tables}).dim
    facts = ClientFacts(cfg, data, state, layout, client_tiers(cfg, data))
    return dim, float(facts.sparse_bytes.mean())


def measure(n: int, degree: int | None, dropout: float, dim: int, fp: FixedPoint, threshold: float, seed: int) -> dict:
    rng = np.random.default_rng([seed, n, int(dropout * 100)])
    clients = list(range(n))
    vectors = {c: fp.encode(rng.normal(0, 0.01, size=dim), n)[0] for c in clients}
    dropped = {c for c in clients if rng.random() < dropout}
    graph = neighbours(clients, degree, rng)
    k = len(graph[0])
    row = {"clients": n, "graph": "complete" if degree is None or degree >= n - 1 else f"SecAgg+ k={k}", "degree": k,
           "dropout": dropout, "dropped": len(dropped), "dim": dim}
    t0 = time.perf_counter()
    try:
        total, st = run_round(clients, vectors, dropped, 1, graph, threshold, fp)
    except SecAggAbort as exc:
        return {**row, "aborted": str(exc), "seconds": time.perf_counter() - t0}
    plain = np.zeros(dim, dtype=np.uint64)
    for c in clients:
        if c not in dropped:
            plain += vectors[c]
    survivors = [c for c in clients if c not in dropped]
    per_client = np.mean([st.bytes_sent[c] + st.bytes_received[c] for c in survivors])
    formula = sum(client_bytes(len(graph[survivors[0]]), dim, fp))
    return {**row, "exact": bool(np.array_equal(total, plain & fp.mask)), "recovered": st.recovered,
            "client_seconds_per_client": st.client_seconds / n, "server_seconds": st.server_seconds,
            "seconds": st.client_seconds + st.server_seconds, "bytes_per_survivor": float(per_client),
            "expansion_vs_float32": float(per_client) / (4 * dim),
            "formula_matches": bool(per_client == formula)}


def paper_check() -> dict:
    """Bytes per client for the paper's setting, from the protocol's message sizes."""
    n, d, bits = PAPER["users"], PAPER["dim"], PAPER["input_bits"]
    fp = FixedPoint(frac_bits=0, modulus_bits=bits + math.ceil(math.log2(n)))  # room for the sum of n inputs
    raw = d * bits // 8
    out = {"setting": PAPER, "modulus_bits": fp.modulus_bits, "raw_bytes": raw}
    for name, k in (("complete", n - 1), ("secagg_plus_k40", 40)):
        sent, received = client_bytes(k, d, fp)
        out[name] = {"degree": k, "sent": sent, "received": received, "expansion": (sent + received) / raw,
                     "expansion_sent_only": sent / raw, "masked_vector_share": fp.wire_bytes(d) / (sent + received)}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/bench_secagg")
    args = ap.parse_args(argv)
    fp = FixedPoint(24, 48)
    if args.quick:
        dim, plain = 2000, float("nan")
        grid = [(n, None, dr) for n in (8, 16) for dr in (0.0, 0.25)] + [(32, 8, 0.1)]
    else:
        dim, plain = ml100k_dims()
        grid = [(n, None, dr) for n in (16, 64, 128) for dr in (0.0, 0.1, 0.3)]
        grid += [(n, 40, dr) for n in (256, 1024) for dr in (0.0, 0.1, 0.3)]
    rows = []
    for n, degree, dropout in grid:
        r = measure(n, degree, dropout, dim, fp, args.threshold, args.seed)
        r["expansion_vs_sparse_upload"] = r.get("bytes_per_survivor", float("nan")) / plain
        rows.append(r)
        print(f"  n={n} {r['graph']} dropout={dropout}: {r.get('seconds', 0):.1f}s", file=sys.stderr, flush=True)
    paper = paper_check()
    headers = ["clients", "graph", "dropout", "dropped", "recovered", "exact", "client s", "server s", "KB/client",
               "x float32", "x sparse"]
    table = [[r["clients"], r["graph"], r["dropout"], r["dropped"], r.get("recovered", "-"),
              str(r.get("exact", "aborted")), r.get("client_seconds_per_client", float("nan")),
              r.get("server_seconds", float("nan")), r.get("bytes_per_survivor", float("nan")) / 1024,
              r.get("expansion_vs_float32", float("nan")), r["expansion_vs_sparse_upload"]] for r in rows]
    print(f"secure aggregation, vectors of {dim:,} values ({fp.modulus_bits}-bit), threshold {args.threshold}")
    print(format_table(headers, table, [None, None, ".2f", None, None, None, ".3f", ".2f", ",.0f", ".2f", ".1f"]))
    c, s = paper["complete"], paper["secagg_plus_k40"]
    print(f"paper check (n=1024, d=2^20, 16-bit inputs, {paper['modulus_bits']}-bit masked values): expansion "
          f"{c['expansion']:.2f}x complete graph (sent only {c['expansion_sent_only']:.2f}x), {s['expansion']:.2f}x "
          f"SecAgg+ k=40; Bonawitz et al. report {PAPER['expansion']}x")
    out = Path(args.out)
    record = {"dim": dim, "plain_sparse_upload_bytes": plain, "fixed_point": {"frac_bits": 24, "modulus_bits": 48},
              "threshold": args.threshold, "rows": rows, "paper_check": paper, "machine": machine()}
    write_json(out / "bench_secagg.json", record)
    for metric, label in (("bytes_per_survivor", "KB per client (sent + received)"), ("seconds", "protocol seconds per round")):
        series = {}
        for dropout in sorted({r["dropout"] for r in rows}):
            pts = [r for r in rows if r["dropout"] == dropout and "exact" in r and r["graph"] == "complete"]
            if pts:
                series[f"complete, dropout {dropout}"] = [r[metric] / (1024 if metric.startswith("bytes") else 1) for r in pts]
        xs = [r["clients"] for r in rows if r["dropout"] == rows[0]["dropout"] and r["graph"] == "complete"]
        series = {k: v for k, v in series.items() if len(v) == len(xs)}
        if series:
            line_chart(out / f"secagg_{metric}.png", xs, series, "clients per round", label, "secure aggregation cost")
    print(f"wrote {out / 'bench_secagg.json'}")
    return record


if __name__ == "__main__":
    main()
