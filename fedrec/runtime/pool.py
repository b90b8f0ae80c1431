"""The client pool: Ray actors, the data they train on, and the models they host.

One pool serves every run in a process through this interface: a sync run, the sub-models and
baseline of FEL, the arms of the fairness study, a benchmark's repeats. Each run registers its model
under a key; the pool keeps track of which version of each model every actor holds and sends an
actor only what it lacks: nothing, the last ``StateChange`` (dense tensors plus the rows the server
wrote), or the whole state (a model's first round, a replacement actor).

Clients are assigned to actors by a stable rule (client id modulo the number of actors), so an
actor trains the same clients every round (their cached data and per-client step state stay put)
and the arithmetic does not depend on which clients happen to be selected together.

An actor that dies mid-round loses its clients' updates for that round (counted by the caller);
it is replaced by a fresh actor with the same data before the next submission.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import ray

from fedrec.client.config import ClientTrainConfig
from fedrec.model import ModelConfig
from fedrec.pipeline import Arrivals
from fedrec.runtime.actor import ActorData, ClientActor, ClientStat, ModelSync
from fedrec.runtime.ray_runtime import ensure_ray, ray_cpus
from fedrec.updates import State, StateChange

log = logging.getLogger(__name__)


@dataclass
class _Model:
    cfg: ModelConfig
    state: State  # the run's own global state (the pool reads it; the run updates it)
    model_fn: object = None
    version: int = 0
    change_ref: ray.ObjectRef | None = None  # StateChange from version - 1 to version
    full_ref: ray.ObjectRef | None = None  # the whole state at ``version`` (put on demand)


@dataclass
class Pending:
    """Calls submitted for one group of clients; ``ClientPool.gather`` collects them."""

    calls: list[tuple[ray.ObjectRef, list[int], int, object]] = field(default_factory=list)


@dataclass
class Gathered:
    arrivals: list[Arrivals]
    stats: list[ClientStat]
    failed: int  # clients whose actor died before reporting


class ClientPool:
    def __init__(self, num_actors: int | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 private_max_mb: float = 1024.0, spill_dir: str | None = None, scheduling_strategy="SPREAD") -> None:
        """``scheduling_strategy``: where Ray puts the actors; SPREAD (default) over the cluster's
        nodes, or any Ray strategy (a placement group, node affinity)."""
        self.num_actors = num_actors
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.private_max_bytes, self.spill_dir = int(private_max_mb * 2**20), spill_dir
        self.scheduling_strategy = scheduling_strategy
        self.actors: list = []
        self._data_refs: list = []
        self._replaced: list[int] = []
        self._models: dict[str, _Model] = {}
        self._versions: list[dict[str, int]] = []

    @staticmethod
    def from_config(cfg) -> ClientPool:
        return ClientPool(cfg.num_actors, cfg.actor_num_cpus, cfg.actor_num_gpus, cfg.client_state.max_memory_mb,
                          cfg.client_state.spill_dir)

    # --- life cycle ---
    def start(self) -> ClientPool:
        """Join or start Ray and create the actors, without waiting for the actors to boot (they
        import torch while the driver loads data). Idempotent. Call it from the main thread: Ray's
        driver connection does not survive being made on another thread."""
        if not self.actors:
            ensure_ray()
            n = self.num_actors or ray_cpus()
            self.actors = [self._new_actor(i) for i in range(n)]
            self._versions = [{} for _ in range(n)]
        return self

    def set_data(self, data) -> None:
        """Ship each actor its share of the data (the rows of the clients it owns and their held-out
        rows, plus the catalogue), once, through the object store."""
        self.start()
        n = len(self.actors)
        self._data_refs = [ray.put(ActorData.shard(data, i, n)) for i in range(n)]
        ray.get([a.set_data.remote(ref) for a, ref in zip(self.actors, self._data_refs)])
        self._models.clear()  # actors dropped every model built on the old data
        self._versions = [{} for _ in self.actors]

    def _new_actor(self, index: int):
        # SPREAD: on a cluster the actors go to different nodes where they can (each node's share of
        # the clients trains there); on one machine it changes nothing.
        strategy = self.scheduling_strategy
        if strategy == "SPREAD" and ray.util.get_current_placement_group() is not None:
            # Inside a placement group (a Ray Tune trial): an explicit strategy would take the actors
            # out of the group's bundles and they would wait forever for CPUs the group holds.
            strategy = None
        actor = ClientActor.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                    scheduling_strategy=strategy).remote(
            index, self.private_max_bytes, self.spill_dir)
        if self._data_refs:
            actor.set_data.remote(self._data_refs[index])  # actor calls run in order: before any training
        return actor

    def replace(self, i: int, dead=None) -> None:
        """Replace actor ``i`` by a fresh one with the same data; ``dead``: the handle that failed,
        so that runs sharing the pool replace it only once."""
        if dead is not None and self.actors[i] is not dead:
            return
        ray.kill(self.actors[i], no_restart=True)
        for attempt in range(5):
            # Wait until the new actor is up: placed on a node that is going down (not yet known dead
            # to Ray) it is cancelled before it runs, and the next node is tried.
            self.actors[i] = self._new_actor(i)
            try:
                ray.get(self.actors[i].node_id.remote())
                break
            except ray.exceptions.RayActorError:
                if attempt == 4:
                    raise
                log.warning("replacement for client actor %d did not start; trying again", i)
                time.sleep(1.0 + attempt)
        self._versions[i] = {}
        self._replaced.append(i)

    def replace_dead(self) -> list[int]:
        """Ping every actor; replace the ones that are gone (e.g. their node died after the round's
        results came back, or a replacement landed on a node that was going down). Returns them."""
        dead = []
        for i, actor in enumerate(list(self.actors)):
            try:
                ray.get(actor.node_id.remote())
            except ray.exceptions.RayActorError:
                log.warning("client actor %d is gone; restarting it", i)
                self.replace(i, actor)
                dead.append(i)
        return dead

    def take_replaced(self) -> list[int]:
        """Actors replaced since the last call (their clients' device state must be restored)."""
        out, self._replaced = sorted(set(self._replaced)), []
        return out

    def stop(self) -> None:
        if ray.is_initialized():  # after ray.shutdown() the actors are gone already (and ray.kill would start Ray)
            for a in self.actors:
                ray.kill(a)
        self.actors, self._versions = [], []

    def __enter__(self) -> ClientPool:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- models ---
    def register(self, key: str, cfg: ModelConfig, state: State, model_fn=None) -> None:
        """A model the actors will train under ``key``, starting from ``state`` (version 0). Registering
        a key again (a resumed run) makes every actor fetch the whole state on its next round."""
        self._models[key] = _Model(cfg, state, model_fn=model_fn)
        for versions in self._versions:
            versions.pop(key, None)

    def publish(self, key: str, change: StateChange) -> None:
        """The run applied a server step: its state moved to the next version by ``change``."""
        m = self._models[key]
        m.version += 1
        m.change_ref, m.full_ref = ray.put(change), None

    def _sync_for(self, i: int, key: str) -> tuple[ModelSync | None, object]:
        m = self._models[key]
        have = self._versions[i].get(key)
        self._versions[i][key] = m.version
        if have == m.version:
            return None, None
        if have == m.version - 1 and m.change_ref is not None:
            return ModelSync("change", m.version), m.change_ref
        if m.full_ref is None:
            m.full_ref = ray.put(m.state)
        return ModelSync("full", m.version, m.cfg, m.model_fn), m.full_ref

    # --- training ---
    def owner(self, clients: np.ndarray) -> np.ndarray:
        return np.asarray(clients, dtype=np.int64) % len(self.actors)

    def submit(self, key: str, clients: np.ndarray, cfg: ClientTrainConfig, seeds: list[int], pipeline_ref, rnd: int) -> Pending:
        """Start training ``clients`` of model ``key`` on their actors; returns at once. Several
        runs can submit before any gathers, so their clients train at the same time."""
        clients = np.asarray(clients, dtype=np.int64)
        owner = self.owner(clients)
        seed_of = dict(zip(clients.tolist(), seeds))
        pending = Pending()
        for i, actor in enumerate(self.actors):
            group = clients[owner == i].tolist()
            if not group:
                continue
            sync, payload = self._sync_for(i, key)
            fut = actor.train.remote(key, sync, payload, group, cfg, [seed_of[c] for c in group], pipeline_ref, rnd)
            pending.calls.append((fut, group, i, actor))
        return pending

    def submit_from(self, key: str, clients: np.ndarray, starts: list, cfg: ClientTrainConfig, seeds: list[int],
                    pipeline_ref, rnd: int) -> Pending:
        """Like ``submit``, but each client trains from its own weights (``starts``, a ``ClientStart``
        per client) instead of the actors' copy of model ``key``."""
        clients = np.asarray(clients, dtype=np.int64)
        owner = self.owner(clients)
        pending = Pending()
        for i, actor in enumerate(self.actors):
            mine = np.flatnonzero(owner == i)
            if not len(mine):
                continue
            group = clients[mine].tolist()
            fut = actor.train_from.remote(key, [starts[j] for j in mine], group, cfg, [seeds[j] for j in mine],
                                          pipeline_ref, rnd)
            pending.calls.append((fut, group, i, actor))
        return pending

    def gather(self, pending: Pending) -> Gathered:
        """Wait for the calls; a dead actor's clients are counted as failed and it is replaced."""
        arrivals, stats, failed = [], [], 0
        for fut, group, i, actor in pending.calls:
            try:
                a, st = ray.get(fut)
            except ray.exceptions.RayActorError:
                failed += len(group)
                log.warning("client actor %d died; its %d clients are lost this round, restarting it", i, len(group))
                self.replace(i, actor)
                continue
            arrivals.append(a)
            stats.extend(st)
        return Gathered(arrivals, stats, failed)

    # --- on the clients: evaluation and device state ---
    def evaluate(self, key: str, split: str, ranking: bool = False, refit=None) -> list[dict]:
        """Every actor's clients score their own ``split`` rows (see ``ClientActor.evaluate``)."""
        self._ensure_synced(key)
        return ray.get([a.evaluate.remote(key, split, ranking, refit=refit) for a in self.actors])

    def _ensure_synced(self, key: str) -> None:
        """Bring every actor's copy of ``key`` to the current version (an actor that trained none
        of the last round's clients is behind)."""
        calls = []
        for i, actor in enumerate(self.actors):
            sync, payload = self._sync_for(i, key)
            if sync is not None:
                calls.append(actor.sync.remote(key, sync, payload))
        ray.get(calls)

    def export_private(self, key: str) -> list[dict | None]:
        return ray.get([a.export_private.remote(key) for a in self.actors])

    def import_private(self, key: str, blobs: list[dict | None], actors: list[int] | None = None) -> None:
        idx = range(len(self.actors)) if actors is None else actors
        ray.get([self.actors[i].import_private.remote(key, blobs[i]) for i in idx])

    def placement(self) -> dict[str, int]:
        """Actors per Ray node (node id -> count) where the pool's actors run now."""
        nodes = ray.get([a.node_id.remote() for a in self.actors])
        out: dict[str, int] = {}
        for n in nodes:
            out[n] = out.get(n, 0) + 1
        return out

    # --- per-client step state (error-feedback memory ...), for checkpoints ---
    def export_client_state(self, key: str) -> dict[int, dict]:
        """Every client's persistent step state for model ``key``, gathered from the actors."""
        out: dict[int, dict] = {}
        for part in ray.get([a.export_client_state.remote(key) for a in self.actors]):
            out.update(part)
        return out

    def import_client_state(self, key: str, states: dict[int, dict]) -> None:
        """Hand each client's saved state to the actor that trains it (``owner``)."""
        owner = self.owner(np.array(sorted(states), dtype=np.int64)) if states else np.zeros(0, dtype=np.int64)
        by_actor: list[dict[int, dict]] = [{} for _ in self.actors]
        for c, i in zip(sorted(states), owner.tolist()):
            by_actor[i][c] = states[c]
        ray.get([a.import_client_state.remote(key, part) for a, part in zip(self.actors, by_actor)])

    def memory_mb(self) -> list[float]:
        return ray.get([a.memory_mb.remote() for a in self.actors])
