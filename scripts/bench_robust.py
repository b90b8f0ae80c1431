"""Byzantine robustness on the tuned ML-100K workload (configs/ml100k_fedyogi_tuned.yaml): every
attack against every aggregator, with 20% and 10% of the clients attacking; test AUC and the
target item's exposure (its HR@10 over benign users, item promotion's measure).

Stages (all arms of a stage that share the same training data run in lockstep on one pool):

1. ``select``: seed 0, 20% attackers, clean + 7 attacks x every rule of the grid. The best rule is
   chosen on validation AUC only: among the rules that hold item promotion's exposure to within
   2x of the clean run's, the one whose worst validation AUC over the clean run and the untargeted
   attacks is highest. One seed cannot tell apart rules closer than its noise, so every rule
   within ``--margin`` (0.002) of the best is a finalist: the finalists run the other seeds at 20%
   too, and the choice among them is the same criterion on validation AUC averaged over the seeds
   (per attack, then the worst attack).
2. ``report``: the other seeds (1-4 by default) for plain mean and the chosen rule at 20%, and all
   seeds at 10%.
   Test AUC is reported once, as mean and spread over the seeds.
3. ``check``: fresh seeds (5-9 by default; ``--check-seeds``) at 20%, for plain mean and the chosen
   rule, reported apart and pooled with the others. Seeds 0-4 were all looked at while the rules
   were designed (the row bound and the agreement's second pass came after seeds 1-2, its weighting
   and memory after all five), so the fresh seeds are the out-of-sample check of the design.
   Later seeds (10-19, ``--later-seeds``) were added after seeds 5-9 had been seen, with no change
   to any rule, to measure the chosen rule's gaps with less noise; reported apart too.

Centered clipping's radius (0.03, 0.1, 0.3) and FoolsGold's variants are chosen the same way, as
entries of the grid; the trimmed fraction and Krum's f are the attacker share the defender plans
for (0.2).

Each cell (share, seed, attack, rule) is cached on its own under ``<out>/cells`` (an arm's numbers
do not depend on the arms trained beside it), so a rule added to the grid trains only its own
arms; the one-file-per-group caches of earlier versions are read as a source of cells.

    .venv/bin/python scripts/bench_robust.py            # ~3.1 hours from an empty cache on 2 cores
    .venv/bin/python scripts/bench_robust.py --quick    # 2 rounds, a few arms
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from _bench_common import format_table, machine, write_json
from _fedbench import comma_list, pyplot, save
from _trustbench import mean_spread, with_sections

from data_pipeline.atomic import write_json_atomic
from data_pipeline.datasets import REPO_ROOT, dataset_path
from fedrec.attacks import attackers_of, pick_target_item, poison_data, target_exposure
from fedrec.config import config_to_dict, load_config
from fedrec.runtime import ClientPool, load_federated_data
from fedrec.runtime.loop import RoundLoop
from fedrec.runtime.run import FederatedRun, ModelDiverged

ATTACKS = ["none", "sign_flip", "scaling", "gaussian", "alie", "ipm", "label_flip", "item_promotion"]
UNTARGETED = ["sign_flip", "scaling", "gaussian", "alie", "ipm", "label_flip"]
CC_RADIUS = 0.1
# Centered clipping's radius is part of the grid (chosen on validation with everything else).
AGGREGATORS = {
    "mean": {"name": "mean"},
    "median": {"name": "median"},
    "trimmed_mean": {"name": "trimmed_mean", "trim_fraction": 0.2},
    "krum": {"name": "krum", "byzantine_fraction": 0.2},
    "multi_krum": {"name": "multi_krum", "byzantine_fraction": 0.2},
    "centered_clipping": {"name": "centered_clipping", "clip_radius": CC_RADIUS},
    "centered_clipping tau=0.03": {"name": "centered_clipping", "clip_radius": 0.03},
    "centered_clipping tau=0.3": {"name": "centered_clipping", "clip_radius": 0.3},
    "bucketing": {"name": "bucketing", "bucket_size": 2, "inner": "centered_clipping", "clip_radius": CC_RADIUS},
    # FoolsGold as published (whole uploads compared, each client's history against every client
    # seen), after bounding each upload to the round's median norm; and compared on the item
    # embedding rows only, each dense tensor and embedding row bounded, with and without history.
    "foolsgold": {"name": "foolsgold"},
    "foolsgold item": {"name": "foolsgold", "features": ["item"], "norm_bound": "tensor"},
    "foolsgold item, round only": {"name": "foolsgold", "features": ["item"], "norm_bound": "tensor", "history": False},
    # FoolsGold on item rows with its row-agreement test (fedrec/pipeline/robust/agreement.py): it
    # then drops clients whose item rows disagree with the trusted other touchers'.
    "foolsgold item, agreement": {"name": "foolsgold", "features": ["item"], "norm_bound": "tensor", "agreement": ["item"]},
    # ... and its coordinated-row guard too (fedrec/pipeline/robust/coordinated.py): a row the
    # trusted push in concert round after round is held still (item promotion).
    **{f"foolsgold item, agreement, guard {t}": {"name": "foolsgold", "features": ["item"], "norm_bound": "tensor",
                                                 "agreement": ["item"], "promotion_guard": ["item"], "promotion_threshold": t}
       for t in (0.4, 0.5, 0.6)},
    # ... with the norm bound's median taken over the clients FoolsGold trusts only: IPM's colluders
    # upload every row that moves (2.8 times the honest clients' rows together), so over every
    # upload the median row norm is one of theirs
    **{f"foolsgold item, agreement, guard {t}, trusted bound": {
        "name": "foolsgold", "features": ["item"], "norm_bound": "tensor", "agreement": ["item"],
        "promotion_guard": ["item"], "promotion_threshold": t, "bound_among": "trusted"} for t in (0.4, 0.5, 0.6)},
    # ... with the agreement test scored again (twice, three times) with only the clients that passed
    # as references: label flippers, trusted by FoolsGold, otherwise serve as references too
    **{f"foolsgold item, agreement x{p}, guard 0.5{', trusted bound' if among == 'trusted' else ''}": {
        "name": "foolsgold", "features": ["item"], "norm_bound": "tensor", "agreement": ["item"], "agreement_passes": p,
        "promotion_guard": ["item"], "promotion_threshold": 0.5, "bound_among": among}
       for p, among in ((2, "all"), (2, "trusted"), (3, "trusted"))},
    # ... with each row's bound the median over the clients of their median row norms: a client
    # that uploads more rows (IPM's colluders: every row that moves) has no more say in it
    **{f"foolsgold item, agreement{' x2' if p == 2 else ''}, guard 0.5, client row bound": {
        "name": "foolsgold", "features": ["item"], "norm_bound": "tensor", "agreement": ["item"], "agreement_passes": p,
        "promotion_guard": ["item"], "promotion_threshold": 0.5, "row_median": "clients"} for p in (1, 2)},
    # ... with each row's cosine weighted by its reference's length (a row many trusted touchers
    # agree on says more than a row with one other toucher), and with a memory of the directions kept
    # on each row before (a lone toucher gets a reference; a flipper's first round meets more)
    **{f"foolsgold item, agreement x2 by reference{f', memory {m}' if m is not None else ''}, guard 0.5, client row bound": {
        "name": "foolsgold", "features": ["item"], "norm_bound": "tensor", "agreement": ["item"], "agreement_passes": 2,
        "agreement_weighting": "reference", **({"agreement_memory": m} if m is not None else {}),
        "promotion_guard": ["item"], "promotion_threshold": 0.5, "row_median": "clients"} for m in (None, 0.5, 0.8)},
}
# Attack strengths: the defaults of fedrec.attacks.config, except ALIE's z (see the README: the
# paper's z_max ~ 0.47 moves plain FedYogi's AUC by under 0.01 here, so it is strengthened).
ATTACK_SETTINGS = {"alie": {"z": 1.5}}


def attack_section(kind: str, fraction: float, target: int) -> dict:
    if kind == "none":
        return {"kind": "none"}
    out = {"kind": kind, "fraction": fraction, **ATTACK_SETTINGS.get(kind, {})}
    if kind == "item_promotion":
        out["target_item"] = target
    return out


def run_arms(base, data, pool, arms: list[tuple[str, str, dict]], fraction: float, seed: int, target: int) -> list[dict]:
    """Train ``arms`` (attack, aggregator label, aggregator section) in lockstep; they must share
    their training data (the same attack kind, or attacks that leave the data alone).

    An arm whose model diverges (non-finite weights: the attack won) is recorded as scored at
    chance (AUC 0.5, exposure unknown) with the round it diverged in, and the group is trained again
    from the start without it, so the other arms' numbers are those of an uninterrupted run."""
    def config(a: str, agg: dict):
        return with_sections(base.with_(seed=seed), attack=attack_section(a, fraction, target), aggregator=agg)

    poisoned = poison_data(config(arms[0][0], arms[0][2]), data)  # the group's arms share it
    pool.set_data(poisoned)
    diverged: dict[tuple[str, str], int] = {}
    while True:
        live = [arm for arm in arms if (arm[0], arm[1]) not in diverged]
        cfgs = [config(a, agg) for a, _, agg in live]
        runs = [FederatedRun(c, poisoned, pool, key=f"{a}/{label}") for c, (a, label, _) in zip(cfgs, live)]
        try:
            if runs:
                RoundLoop(pool, runs, rounds=base.rounds, eval_every=base.rounds, progress=True,
                          desc=f"{live[0][0]} x{len(live)} seed {seed}").run()
            break
        except ModelDiverged as exc:
            a, label = exc.key.split("/", 1)
            diverged[(a, label)] = exc.round
            print(f"  {fraction:.0%} seed {seed} {a:>14} {label:>17}: diverged in round {exc.round}; "
                  f"training the other {len(live) - 1} arm(s) again without it", file=sys.stderr, flush=True)
    bad = set(attackers_of(base.with_(seed=seed, **{"attack.kind": "sign_flip", "attack.fraction": fraction}),
                           data.num_clients).tolist())
    benign = [c for c in range(data.num_clients) if c not in bad]
    out = []
    by_arm = {(a, label): run for run, (a, label, _) in zip(runs, live)}
    for a, label, _ in arms:
        cell = {"fraction": fraction, "seed": seed, "attack": a, "aggregator": label, "target_item": target}
        if (a, label) in diverged:
            out.append({**cell, "test_auc": 0.5, "validation_auc": 0.5, "exposure": float("nan"),
                        "diverged_round": diverged[(a, label)]})
            continue
        run = by_arm[(a, label)]
        m = run.final_metrics()
        report = run.pipeline.report()  # e.g. FoolsGold's share of zero weights
        out.append({**cell, "test_auc": m["auc"], "validation_auc": m["validation_auc"],
                    "exposure": target_exposure(run.model, run.state, run.data, benign, target), **report})
        print(f"  {fraction:.0%} seed {seed} {a:>14} {label:>17}: test {m['auc']:.4f} val {m['validation_auc']:.4f} "
              f"exposure {out[-1]['exposure']:.3f}", file=sys.stderr, flush=True)
    return out


# Config fields added to the schema after cached cells were written, at defaults that leave what a
# cell measures unchanged. Any new field changes ``config_to_dict`` and so every cache key; a cell
# is looked up under the current key and under the keys without each group of these (when the
# config holds them at these values), so adding a field here keeps the cache. A new field that can
# change a cell's numbers at its default must not be listed.
COMPATIBLE_ADDITIONS = [
    {"eval_ranking": True},
    {"aggregator.history": True, "aggregator.norm_bound": "median", "aggregator.kappa": 1.0, "aggregator.features": []},
    {"compression.precision": "fp32"},
    {"client.refit_private_epochs": 0, "client.eval_refit_private_epochs": 0},  # act only on private tables
    {"strategy.row_mean": "touchers"},  # the average every cell was trained with
]


def _without(doc: dict, fields: dict) -> dict | None:
    """``doc`` less ``fields`` (dotted paths), or None unless it holds each at the value given."""
    doc = json.loads(json.dumps(doc, default=str))
    for path, value in fields.items():
        *outer, last = path.split(".")
        d = doc
        for part in outer:
            d = d.get(part) if isinstance(d.get(part), dict) else {}
        if last not in d or d[last] != value:
            return None
        del d[last]
    return doc


def config_docs(base) -> list[dict]:
    """The workload's config as a dict: as it is now first, then as it was before each combination
    of ``COMPATIBLE_ADDITIONS`` existed."""
    docs = []
    for r in range(len(COMPATIBLE_ADDITIONS) + 1):
        for drop in itertools.combinations(COMPATIBLE_ADDITIONS, r):
            doc = _without(config_to_dict(base), {k: v for group in drop for k, v in group.items()})
            if doc is not None and doc not in docs:
                docs.append(doc)
    return docs


def _digest(parts: list) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cell_paths(cache: Path, docs: list[dict], seed: int, fraction: float, attack: str, label: str, section: dict) -> list[Path]:
    """Where one cell is cached, under each config of ``docs`` (the current one first). The key is
    what its numbers depend on: the workload (less its aggregator section, which every arm
    replaces), seed, attacker share, attack, the arm's aggregator section and the attack
    strengths; not the other arms trained beside it (their runs are independent)."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)
    out = []
    for doc in docs:
        doc = {k: v for k, v in doc.items() if k != "aggregator"}
        out.append(cache / f"arm-{attack}-{slug}-s{seed}-f{fraction}-"
                           f"{_digest([doc, seed, fraction, attack, section, ATTACK_SETTINGS])}.json")
    return out


def legacy_cells(docs: list[dict], cache: Path, seed: int, fraction: float, group: str, aggregators: dict) -> dict:
    """Cells of the earlier format (one file per group, keyed by the group's whole list of arms),
    as {(attack, aggregator label): cell}. A file counts only if its name's hash is the old key
    recomputed from this workload (``docs``), seed and share and the arms it holds (with this grid's
    sections for their labels), so a file from another config or with a changed section is ignored."""
    found: dict = {}
    for path in sorted(cache.glob(f"{group}-s{seed}-f{fraction}-*.json")):
        got = json.loads(path.read_text())
        if any(c["aggregator"] not in aggregators for c in got):
            continue
        arms = [(c["attack"], c["aggregator"], aggregators[c["aggregator"]]) for c in got]
        if path.stem.rsplit("-", 1)[-1] in {_digest([d, seed, fraction, arms, ATTACK_SETTINGS]) for d in docs}:
            found.update({(c["attack"], c["aggregator"]): c for c in got})
    return found


def run_cells(base, pool, cells: list[tuple[float, int, str, str]], aggregators: dict, cache: Path | None = None) -> list[dict]:
    """Train (fraction, seed, attack, aggregator) cells, grouped so that arms sharing data run together.
    Each cell is kept under ``cache`` on its own (``cell_paths``), so an interrupted benchmark resumes
    where it stopped and a new aggregator trains only its own arms (in lockstep, as ever); group
    files of the earlier format are read as a source of cells."""
    cells = list(dict.fromkeys(cells))
    docs = config_docs(base) if cache is not None else []
    done: dict = {}
    by_seed: dict = {}
    for f, s, a, g in cells:
        group = a if a in ("label_flip", "item_promotion") else "clean-data"
        by_seed.setdefault(s, {}).setdefault((f, group), []).append((a, g, aggregators[g]))
    for seed, groups in sorted(by_seed.items()):
        data = target = None
        for (fraction, group), arms in groups.items():
            legacy = legacy_cells(docs, cache, seed, fraction, group, aggregators) if cache is not None else {}
            missing = []
            for a, label, section in arms:
                paths = cell_paths(cache, docs, seed, fraction, a, label, section) if cache is not None else []
                hit = next((p for p in paths if p.exists()), None)
                if hit is None and (a, label) in legacy:
                    write_json_atomic(paths[0], legacy[(a, label)])
                    hit = paths[0]
                if hit is not None:
                    done[(fraction, seed, a, label)] = {**json.loads(hit.read_text()), "aggregator": label}
                else:
                    missing.append((a, label, section))
            print(f"{fraction:.0%} seed {seed} {group}: {len(arms) - len(missing)} cached, training {len(missing)}",
                  file=sys.stderr, flush=True)
            if not missing:
                continue
            if data is None:
                data = load_federated_data(base.with_(seed=seed))
                target = pick_target_item(data, seed)
            for (a, label, section), cell in zip(missing, run_arms(base, data, pool, missing, fraction, seed, target)):
                if cache is not None:
                    write_json_atomic(cell_paths(cache, docs, seed, fraction, a, label, section)[0], cell)
                done[(fraction, seed, a, label)] = cell
    return [done[c] for c in cells]


def ratio(x: float, clean: float, users: int) -> float:
    """Exposure relative to clean, with one user's worth added to both (clean is often 0)."""
    return (x + 1 / users) / (clean + 1 / users)


def choose(cells: list[dict], aggregators: list[str], users: int) -> tuple[str, dict]:
    """The chosen rule (validation AUC and exposure only, each the mean over the seeds of ``cells``)
    and each rule's criteria."""
    by: dict = {}
    for c in cells:
        by.setdefault((c["attack"], c["aggregator"]), []).append(c)
    at = {k: {"validation_auc": float(np.mean([c["validation_auc"] for c in cs])),
              "exposure": float(np.mean([c["exposure"] for c in cs]))} for k, cs in by.items()}
    clean_exposure = at[("none", "mean")]["exposure"]
    crit = {}
    for g in aggregators:
        worst = min(at[(a, g)]["validation_auc"] for a in ["none", *UNTARGETED] if (a, g) in at)
        exp = at[("item_promotion", g)]["exposure"] if ("item_promotion", g) in at else float("nan")
        crit[g] = {"worst_validation_auc": worst, "promotion_exposure": exp,
                   "exposure_ok": bool(ratio(exp, clean_exposure, users) <= 2) if exp == exp else True}
    ok = [g for g in aggregators if crit[g]["exposure_ok"]] or aggregators
    return max(ok, key=lambda g: crit[g]["worst_validation_auc"]), crit


def summarize(cells: list[dict], users: int) -> dict:
    """Mean and spread over seeds per (fraction, attack, aggregator), and the targets."""
    groups: dict = {}
    for c in cells:
        groups.setdefault((c["fraction"], c["attack"], c["aggregator"]), []).append(c)
    rows = {}
    for (f, a, g), cs in groups.items():
        auc, auc_sd = mean_spread(c["test_auc"] for c in cs)
        val, _ = mean_spread(c["validation_auc"] for c in cs)
        exp, exp_sd = mean_spread(c["exposure"] for c in cs)
        rows[f"{f}/{a}/{g}"] = {"fraction": f, "attack": a, "aggregator": g, "seeds": sorted(c["seed"] for c in cs),
                                "test_auc": auc, "test_auc_sd": auc_sd, "validation_auc": val, "exposure": exp,
                                "exposure_sd": exp_sd}
    return rows


def targets(rows: dict, best: str, users: int) -> dict:
    clean = rows.get("0.2/none/mean") or next(r for r in rows.values() if r["attack"] == "none" and r["aggregator"] == "mean")
    out = {"attack_is_real": {}, "best_within_0.01": {}, "best_promotion_within_2x": None}
    for a in [*UNTARGETED, "item_promotion"]:
        r = rows.get(f"0.2/{a}/mean")
        if r is None:
            continue
        drop = clean["test_auc"] - r["test_auc"]
        rise = ratio(r["exposure"], clean["exposure"], users)
        out["attack_is_real"][a] = {"auc_drop": drop, "exposure_ratio": rise, "met": bool(drop >= 0.05 or rise >= 5)}
        b = rows.get(f"0.2/{a}/{best}")
        if b is None:
            continue
        if a == "item_promotion":
            r2 = ratio(b["exposure"], clean["exposure"], users)
            out["best_promotion_within_2x"] = {"exposure": b["exposure"], "clean": clean["exposure"], "ratio": r2,
                                               "met": bool(r2 <= 2)}
        else:
            gap = clean["test_auc"] - b["test_auc"]
            out["best_within_0.01"][a] = {"auc_gap": gap, "met": bool(gap <= 0.01)}
    return out


def plot(path: Path, cells: list[dict], attacks: list[str], aggregators: list[str]) -> None:
    plt = pyplot()
    sel = [c for c in cells if c["fraction"] == 0.2 and c["seed"] == 0]
    at = {(c["attack"], c["aggregator"]): c for c in sel}
    # one panel above the other, the rules' long names along the bottom of each
    fig, axes = plt.subplots(2, 1, figsize=(max(12, 0.62 * len(aggregators)), 13))
    for ax, key, title, cmap in ((axes[0], "test_auc", "test AUC", "viridis"), (axes[1], "exposure", "target exposure (HR@10)", "magma")):
        grid = np.array([[at.get((a, g), {}).get(key, np.nan) for g in aggregators] for a in attacks])
        im = ax.imshow(grid, cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(aggregators)), aggregators, rotation=35, ha="right", rotation_mode="anchor", fontsize=7)
        ax.set_yticks(range(len(attacks)), attacks, fontsize=8)
        for i in range(len(attacks)):
            for j in range(len(aggregators)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                            color="k" if im.norm(grid[i, j]) > 0.6 else "w")  # dark on the bright cells
        ax.set_title(f"{title}, 20% attackers, seed 0", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
    save(fig, path)


def main(argv: list[str] | None = None, pool: ClientPool | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO_ROOT / "configs" / "ml100k_fedyogi_tuned.yaml"))
    ap.add_argument("--seeds", type=comma_list(int), default="0,1,2,3,4")
    ap.add_argument("--fractions", type=comma_list(float), default="0.2,0.1")
    ap.add_argument("--check-seeds", type=comma_list(int), default="5,6,7,8,9",
                    help="fresh seeds, run after the choice at the first fraction and reported apart")
    ap.add_argument("--later-seeds", type=comma_list(int), default=",".join(map(str, range(10, 20))),
                    help="more fresh seeds, added after the first fresh ones were seen; reported apart")
    ap.add_argument("--best", default=None, help="skip selection and use this aggregator")
    ap.add_argument("--margin", type=float, default=0.002,
                    help="rules within this of seed 0's best worst validation AUC are finalists, chosen among "
                         "on validation over all --seeds")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench_robust")
    ap.add_argument("--cache", default=None, help="where cells are kept (default <out>/cells; share it between outs)")
    args = ap.parse_args(argv)
    base = load_config(args.config, **{"data.path": str(dataset_path("ml-100k"))})
    base = base.with_(eval_every=base.rounds)
    attacks, aggregators = list(ATTACKS), dict(AGGREGATORS)
    seeds, fractions = args.seeds, args.fractions
    if args.quick:
        base = base.with_(rounds=2, eval_every=2, clients_per_round=10)
        attacks, seeds, fractions = ["none", "sign_flip", "item_promotion"], [0], [0.2]
        args.check_seeds, args.later_seeds = [1], []
        aggregators = {k: aggregators[k] for k in ("mean", "median")}
    owned = pool is None
    pool = pool or ClientPool(num_actors=2).start()
    out = Path(args.out)
    t0 = time.perf_counter()
    first = fractions[0]
    names = list(aggregators)
    cache = Path(args.cache) if args.cache else out / "cells"
    cells = run_cells(base, pool, [(first, seeds[0], a, g) for a in attacks for g in names], aggregators, cache)
    users = load_federated_data(base).num_clients
    best, crit = (args.best, {}) if args.best else choose([c for c in cells if c["seed"] == seeds[0]], names, users)
    finalists = {}
    if not args.best and len(seeds) > 1:
        # one seed's validation cannot tell apart rules within its noise: those within --margin of
        # the best go through the other seeds too, and the choice is on validation over all of them
        near = [g for g in names if crit[g]["exposure_ok"]
                and crit[g]["worst_validation_auc"] >= crit[best]["worst_validation_auc"] - args.margin]
        if len(near) > 1:
            cells += run_cells(base, pool, [(first, s, a, g) for s in seeds[1:] for a in attacks
                                            for g in dict.fromkeys(["mean", *near])], aggregators, cache)
            best, finalists = choose([c for c in cells if c["fraction"] == first and c["aggregator"] in ("mean", *near)],
                                     near, users)
    compared = ["mean", best] if best != "mean" else ["mean"]
    more = [(first, s, a, g) for s in seeds[1:] for a in attacks for g in compared]
    more += [(f, s, a, g) for f in fractions[1:] for s in seeds for a in attacks if a != "none" for g in compared]
    cells += run_cells(base, pool, more, aggregators, cache)
    fresh_seeds = list(dict.fromkeys([*args.check_seeds, *args.later_seeds]))
    check_cells = run_cells(base, pool, [(first, s, a, g) for s in fresh_seeds for a in attacks for g in compared],
                            aggregators, cache)
    if owned:
        pool.stop()
    cells = list({(c["fraction"], c["seed"], c["attack"], c["aggregator"]): c for c in cells}.values())
    rows = summarize(cells, users)
    goal = targets(rows, best, users)
    # the fresh seeds on their own, and with the others (each seed's clean run from the same seeds)
    check = {}
    if check_cells:
        pooled = [c for c in cells if c["fraction"] == first] + check_cells
        parts = [("fresh", [c for c in check_cells if c["seed"] in args.check_seeds]),
                 ("later", [c for c in check_cells if c["seed"] in args.later_seeds]),
                 ("fresh and later", check_cells), ("all", pooled)]
        for part, cs in [(p, cs) for p, cs in parts if cs]:
            r = summarize(cs, users)
            check[part] = {"seeds": sorted({c["seed"] for c in cs}), "summary": r, "targets": targets(r, best, users)}
        check["fresh and later"]["cells"] = check_cells

    print(f"aggregator chosen on validation AUC: {best}")
    if crit:
        print(format_table(["aggregator", "worst val AUC", "promotion exposure", "exposure <= 2x clean"],
                           [[g, c["worst_validation_auc"], c["promotion_exposure"], str(c["exposure_ok"])] for g, c in crit.items()]))
    if finalists:
        print(f"finalists, validation AUC over seeds {seeds} (per attack the mean over seeds, then the worst attack):")
        print(format_table(["aggregator", "worst mean val AUC", "mean promotion exposure"],
                           [[g, c["worst_validation_auc"], c["promotion_exposure"]] for g, c in finalists.items()]))
    headers = ["attackers", "attack", "aggregator", "seeds", "test AUC", "sd", "exposure", "sd"]
    table = [[f"{r['fraction']:.0%}", r["attack"], r["aggregator"], len(r["seeds"]), r["test_auc"], r["test_auc_sd"],
              r["exposure"], r["exposure_sd"]] for r in rows.values()]
    print(format_table(headers, table, [None, None, None, None, ".4f", ".4f", ".3f", ".3f"]))
    for a, t in goal["attack_is_real"].items():
        print(f"attack {a}: AUC drop {t['auc_drop']:+.4f}, exposure x{t['exposure_ratio']:.1f} -> {'real' if t['met'] else 'NOT real'}")
    for a, t in goal["best_within_0.01"].items():
        print(f"{best} under {a}: {t['auc_gap']:+.4f} below clean -> {'met' if t['met'] else 'MISSED'}")
    if goal["best_promotion_within_2x"]:
        t = goal["best_promotion_within_2x"]
        print(f"{best} under item_promotion: exposure {t['exposure']:.3f} vs clean {t['clean']:.3f} "
              f"(x{t['ratio']:.1f}) -> {'met' if t['met'] else 'MISSED'}")
    for part, c in check.items():
        name = f"{part} seeds"
        if c["targets"]["best_promotion_within_2x"]:
            t = c["targets"]["best_promotion_within_2x"]
            print(f"{name} {c['seeds']}, {first:.0%}: {best} under item_promotion: exposure {t['exposure']:.3f} "
                  f"vs clean {t['clean']:.3f} -> {'met' if t['met'] else 'MISSED'}")
        for a, t in c["targets"]["best_within_0.01"].items():
            print(f"{name} {c['seeds']}, {first:.0%}: {best} under {a}: {t['auc_gap']:+.4f} below clean -> "
                  f"{'met' if t['met'] else 'MISSED'}")
    record = {"config": args.config, "rounds": base.rounds, "seeds": seeds, "fractions": fractions, "best": best,
              "selection": crit, "finalists": finalists, "margin": args.margin, "aggregators": aggregators,
              "attack_settings": ATTACK_SETTINGS, "cells": cells,
              "summary": rows, "targets": goal, "check": check, "seconds": time.perf_counter() - t0, "machine": machine()}
    write_json(out / "bench_robust.json", record)
    plot(out / "robust.png", cells, attacks, names)
    print(f"wrote {out / 'bench_robust.json'} and {out / 'robust.png'}")
    return record


if __name__ == "__main__":
    main()
