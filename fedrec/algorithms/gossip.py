"""Decentralized training (``mode: gossip``): no server; every client is a node with its own model.

Each round ``clients_per_round`` nodes (all of them if that is >= the number of nodes) train
locally from their own models on the shared actor pool (``ClientPool.submit_from``: no process
per node); every node applies its neighbourhood's averaged update, per embedding row over the
neighbours that touched it (``fedrec.gossip.updates``: FedAvg's row-wise mean, without which a
row's update is divided among all nodes and every method stays at chance AUC); then every node
exchanges messages with its neighbours on the communication graph and mixes
(``fedrec.gossip.exchange``: D-PSGD, CHOCO-SGD or PowerGossip). On the complete graph with
uniform weights, D-PSGD is FedAvg. The node models live stacked on the driver
(``fedrec.gossip.nodes``).

Reported: the averaged model's validation and test AUC (the run's ``state`` is the nodes' mean,
which a doubly stochastic W never moves: only training does; it is taken when evaluation or a
checkpoint reads it), the consensus distance every round (``history``), the mean and worst node's
test AUC at the end (each node's own model, scored once after the last round), and bytes per node
(what a node sent over the run, on average: its updates to its neighbours and the exchange's
messages). ``dense_bytes_up`` is what D-PSGD's whole-model messages (and the same updates) would
have cost on the same graph, so ``compression_ratio_up`` compares against uncompressed gossip.

The simulated clock: a round lasts as long as its slowest node, which computes (if it trained)
and then sends and receives its messages at its tier's bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from fedrec.algorithms.common import drive, finish, make_loop, session
from fedrec.gossip import (
    NodeModels,
    apply_updates,
    build_graph,
    make_exchange,
    mixing_matrix,
    select_nodes,
    social_edges,
    spectral_gap,
)
from fedrec.gossip.evaluate import node_aucs
from fedrec.gossip.transport import GossipPipeline
from fedrec.pipeline import ServerContext
from fedrec.pipeline.wire import WireSchema
from fedrec.runtime.data import FederatedData
from fedrec.runtime.pool import ClientPool, Gathered, Pending
from fedrec.runtime.result import FederatedResult
from fedrec.runtime.run import FederatedRun, RoundPlan, Submission


@dataclass
class GossipResult(FederatedResult):
    node_auc_mean: float = math.nan  # test AUC of each node's own model, averaged over nodes
    node_auc_worst: float = math.nan
    bytes_per_node: float = 0.0  # bytes a node sent over the run, mean over nodes
    # Of bytes_up: the trained nodes' updates sent to their neighbours (uncompressed; the rest is
    # the exchange's messages, which the algorithm's compression shrinks).
    update_bytes: int = 0
    algorithm: str = ""
    topology: str = ""
    spectral_gap: float = 0.0  # 1 - |lambda_2(W)|: how fast mixing forgets disagreement
    graph: dict = field(default_factory=dict)

    def summary(self) -> str:
        last = next((h["consensus_distance"] for h in reversed(self.history) if "consensus_distance" in h), math.nan)
        return (super().summary() + f"\ngossip: {self.algorithm} on {self.topology} ({self.graph.get('nodes')} nodes, "
                f"{self.graph.get('edges')} edges, gap {self.spectral_gap:.2g}) node_auc mean={self.node_auc_mean:.4f} "
                f"worst={self.node_auc_worst:.4f} bytes/node={self.bytes_per_node:,.0f} consensus={last:.3g}")


class GossipRun(FederatedRun):
    def __init__(self, cfg, data: FederatedData, pool: ClientPool | None) -> None:
        super().__init__(cfg, data, pool, pipeline=GossipPipeline())
        if cfg.compression.method != "none":  # the update messages, laid out like sync uploads (no table is private)
            schema = WireSchema.of(self.state, self.layout.tables, whole_tables=not cfg.client.sparse_updates)
            self.pipeline = GossipPipeline(cfg.compression, schema)
        g = cfg.gossip
        n = data.num_clients
        edges, source = (social_edges(g.graph, cfg.data, data.client_users) if g.topology == "social" else (None, ""))
        self.graph, self.graph_report = build_graph(g.topology, n, cfg.seed, edges, source)
        w = mixing_matrix(self.graph, g.weights)
        self.degree = np.asarray(w.getnnz(axis=1) - 1, dtype=np.int64)
        self.gap = spectral_gap(w)
        self.nodes = NodeModels(self.state, n, self.layout.tables, data)
        self.exchange = make_exchange(g, w, self.degree, self.nodes, cfg.seed)
        spec = cfg.tiers.tiers
        self._speed = np.array([t.speed for t in spec])[self.tiers]
        self._up = np.array([t.up_mbps for t in spec])[self.tiers] * 1e6 / 8  # bytes per second
        self._down = np.array([t.down_mbps for t in spec])[self.tiers] * 1e6 / 8

    def plan(self, rnd: int) -> RoundPlan:
        nodes = select_nodes(self.data.num_clients, self.cfg.clients_per_round, self.cfg.seed, rnd)
        return RoundPlan([Submission(nodes, self.strategy.fit_config())], {"selected": int(len(nodes))})

    def submit(self, pool: ClientPool, sub: Submission, rnd: int) -> Pending:
        seeds = [self.seed_of(rnd, c) for c in sub.clients]
        starts = [self.nodes.start(int(c)) for c in sub.clients]
        return pool.submit_from(self.key, sub.clients, starts, sub.config, seeds, self.pipeline_ref(), rnd)

    def finish(self, rnd: int, plan: RoundPlan, gathered: list[Gathered]) -> dict:
        arrived = [u for g in gathered for a in g.arrivals for u in (a.updates or [])]
        sizes = {u.client: u.nbytes() for u in arrived}  # as sent (encoded, when compressed)
        updates = self.pipeline.decode(arrived, ServerContext(rnd, self.cfg.seed, self.data.num_clients))
        told = apply_updates(self.nodes, updates, self.exchange.w, self.degree, sizes=sizes)
        sent = told + self.exchange.step(self.nodes, rnd)
        trained = np.zeros(self.data.num_clients, dtype=bool)
        trained[plan.submissions[0].clients] = True
        compute = np.where(trained, self.facts.local_steps * self.cfg.clock.step_seconds / self._speed, 0.0)
        sim = float((compute + sent / self._up + sent / self._down).max()) + self.cfg.clock.server_seconds
        stats = [s for g in gathered for s in g.stats]
        nodes = np.arange(self.data.num_clients)
        joules = np.where(trained, self.facts.round_times(rnd, nodes, nominal=True).compute_joules, 0.0)
        energy = self.account_energy(nodes, joules, compute + sent / self._up + sent / self._down, sent, sent, sim)
        t = self.totals
        t["client_updates"] += len(stats)
        t["failed_updates"] += sum(g.failed for g in gathered)
        update_bytes = int(told.sum())
        t["bytes_up"] += int(sent.sum())
        t["update_bytes"] = t.get("update_bytes", 0) + update_bytes
        t["bytes_down"] += int(sent.sum())  # every message sent is received once
        raw = sum(int(self.degree[u.client]) * (int(self.facts.uncompressed_up[u.client]) + 8)  # the same, uncompressed
                  for u in updates if u.weight > 0)
        dense = int(self.degree.sum()) * self.facts.model_bytes + raw
        t["dense_bytes_up"] += dense
        t["dense_bytes_down"] = t.get("dense_bytes_down", 0) + dense
        t["sim_seconds"] += sim
        return {"round": rnd, "client_updates": len(stats), "failed_updates": sum(g.failed for g in gathered),
                "sim_seconds": t["sim_seconds"], "sim_round_seconds": sim, "bytes_up": int(sent.sum()),
                "bytes_down": int(sent.sum()), "bytes_per_node": float(sent.mean()),
                "train_loss": float(np.mean([s.loss for s in stats])) if stats else float("nan"),
                "consensus_distance": self.nodes.consensus_distance(), **energy, **plan.info}

    @torch.no_grad()
    def _average(self) -> None:
        """``state`` <- the nodes' mean. Only evaluation and checkpoints read it, so it is taken
        then rather than every round (on Last.fm's 1,892 nodes a mean costs ~0.5 s)."""
        for k, v in self.nodes.mean().items():
            self.state[k].copy_(v)

    def evaluate(self, final: bool = False) -> dict:
        self._average()
        return super().evaluate(final)

    def _on_clients(self, split: str, ranking: bool) -> tuple[np.ndarray, np.ndarray, dict]:
        """The reported model is the nodes' average, which lives on the driver (no actor holds it):
        it is scored here; each node's own model is scored in ``node_metrics``."""
        labels, probs = self.predict(split)
        return labels, probs, {}

    def node_metrics(self) -> dict:
        """Every node's test AUC (on ``gossip.node_eval_rows`` test rows when set)."""
        rows = None
        limit = self.cfg.gossip.node_eval_rows
        if limit is not None and limit < len(self.data.test):
            rows = np.sort(np.random.default_rng([self.cfg.seed, 0xE7]).choice(len(self.data.test), limit, replace=False))
        aucs = node_aucs(self.nodes, self.layout, self.data.test, rows)
        return {"node_auc_mean": float(np.nanmean(aucs)), "node_auc_worst": float(np.nanmin(aucs))}

    def state_dict(self) -> dict:
        self._average()
        return {**super().state_dict(), "nodes": self.nodes.state_dict(), "exchange": self.exchange.state_dict()}

    def load_state_dict(self, blob: dict) -> None:
        super().load_state_dict(blob)
        self.nodes.load_state_dict(blob["nodes"])
        self.exchange.load_state_dict(blob["exchange"])


def run_gossip(cfg, data: FederatedData | None = None, pool: ClientPool | None = None, *, progress: bool = False,
               resume: bool = False, after_submit=None, trackers=None) -> GossipResult:
    with session(cfg, data, pool) as s:
        run = GossipRun(cfg, s.data, s.pool)
        drive(make_loop(cfg, s.pool, [run], progress=progress, desc=f"gossip {cfg.gossip.algorithm}",
                        after_submit=after_submit, trackers=trackers), resume)
        n = s.data.num_clients
        result = GossipResult.from_run(
            run, s.wall(), **run.node_metrics(), bytes_per_node=run.totals["bytes_up"] / n,
            update_bytes=run.totals.get("update_bytes", 0),
            algorithm=cfg.gossip.algorithm, topology=cfg.gossip.topology, spectral_gap=run.gap,
            graph=run.graph_report.to_dict())
    return finish(result, cfg)
