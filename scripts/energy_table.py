"""Energy and carbon of every federated benchmark run on record: one row per benchmark setting.

The federated benchmarks cache each run's JSON under ``results/<bench>/runs/<setting>-s<seed>.json``
(``_fedbench.cached_result``), and every run JSON carries ``energy``, ``co2e`` and
``energy_source`` (fedrec/energy). This script reads them back, groups the seeds of a setting, and
prints mean simulated energy (clients + server + network, from the energy model on the simulated
clock), its split, the host's own energy (codecarbon, measured or estimated), and grams of CO2e
(operational + embodied), so the README's energy table is a rerunnable command rather than numbers
copied by hand. Runs written before energy accounting existed have no ``energy`` key and are
counted as such, not guessed.

    .venv/bin/python scripts/energy_table.py                     # every results/*/runs/
    .venv/bin/python scripts/energy_table.py --benches bench_compression,bench_gossip
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import REPO_ROOT, bar_chart, format_table, write_json  # noqa: E402

SEED_SUFFIX = re.compile(r"-s(\d+)$")


@dataclass
class EnergyRow:
    bench: str
    setting: str
    runs: int
    without_energy: int  # runs on record with no energy key (written before accounting existed)
    total_kj: float
    client_pct: float
    server_pct: float
    network_pct: float
    host_kj: float
    co2e_grams: float
    operational_grams: float
    embodied_grams: float
    energy_source: str


def setting_of(path: Path) -> str:
    """The run's setting: its cache file name without the seed suffix (runs of dashes, where the
    cache name's slug replaced spaces and symbols, read back as one space)."""
    return re.sub(r"-{2,}", " ", SEED_SUFFIX.sub("", path.stem))


def summarize(bench: str, setting: str, runs: list[dict]) -> EnergyRow | None:
    with_energy = [r for r in runs if isinstance(r.get("energy"), dict)]
    if not with_energy:
        return None

    def mean(get) -> float:
        return float(np.mean([get(r) for r in with_energy]))

    total = mean(lambda r: r["energy"]["total_joules"])
    share = lambda key: 100 * mean(lambda r: r["energy"][key]) / total if total else float("nan")  # noqa: E731
    sources = sorted({str(r.get("energy_source", "?")) for r in with_energy})
    return EnergyRow(
        bench=bench, setting=setting, runs=len(with_energy), without_energy=len(runs) - len(with_energy),
        total_kj=total / 1e3, client_pct=share("client_joules"), server_pct=share("server_joules"),
        network_pct=share("network_joules"), host_kj=mean(lambda r: r["energy"].get("host_joules", 0.0)) / 1e3,
        co2e_grams=mean(lambda r: r.get("co2e_grams", np.nan)),
        operational_grams=mean(lambda r: (r.get("co2e") or {}).get("operational_grams", np.nan)),
        embodied_grams=mean(lambda r: (r.get("co2e") or {}).get("embodied_grams", np.nan)),
        energy_source="/".join(sources))


def collect(results: Path, benches: list[str] | None) -> list[EnergyRow]:
    rows: list[EnergyRow] = []
    for runs_dir in sorted(results.glob("*/runs")):
        bench = runs_dir.parent.name
        if benches and bench not in benches:
            continue
        groups: dict[str, list[dict]] = defaultdict(list)
        for path in sorted(runs_dir.glob("*.json")):
            record = json.loads(path.read_text())
            if isinstance(record, dict) and "final_auc" in record:  # a federated run's JSON
                groups[setting_of(path)].append(record)
        for setting, runs in groups.items():
            row = summarize(bench, setting, runs)
            if row is not None:
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[EnergyRow]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    ap.add_argument("--benches", default=None, help="comma-separated folder names under --results (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="folder for energy_table.json/.png (default RESULTS/energy)")
    args = ap.parse_args(argv)
    rows = collect(args.results, args.benches.split(",") if args.benches else None)
    if not rows:
        print(f"no run JSON with an energy key under {args.results}/*/runs/", file=sys.stderr)
        raise SystemExit(2)
    print(format_table(
        ["bench", "setting", "runs", "total kJ", "clients %", "server %", "network %", "host kJ", "gCO2e",
         "operational g", "embodied g", "host source"],
        [[r.bench, r.setting, r.runs, r.total_kj, r.client_pct, r.server_pct, r.network_pct, r.host_kj,
          r.co2e_grams, r.operational_grams, r.embodied_grams, r.energy_source] for r in rows],
        ["", "", "", ".1f", ".0f", ".0f", ".0f", ".2f", ".2f", ".2f", ".2f", ""]))
    skipped = sum(r.without_energy for r in rows)
    if skipped:
        print(f"({skipped} run(s) in these settings predate energy accounting and are not counted)")
    out = args.out or args.results / "energy"
    write_json(out / "energy_table.json", {"rows": [asdict(r) for r in rows]})
    bar_chart(out / "energy_table.png", [f"{r.bench}: {r.setting}" for r in rows],
              {"simulated kJ (mean over seeds)": [r.total_kj for r in rows],
               "gCO2e": [r.co2e_grams for r in rows]}, "Energy and carbon per benchmark run", highlight_first=False)
    return rows


if __name__ == "__main__":
    main()
