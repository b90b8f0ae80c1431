"""The Flower side of ``scripts/bench_vs_flower.py``: ml100k-fed as a Flower 1.40 simulation.

Runs inside the Flower venv (``.bench_venvs/flower``: flwr[simulation]==1.40.0 with its ray 2.55.1,
plus this repository installed ``--no-deps -e``), started by the benchmark as

    .bench_venvs/flower/bin/python scripts/_flower_app.py --spec SPEC.json --out DIR

SPEC.json holds the one ``FederatedConfig`` both frameworks run (``config_to_dict``), so the
hyper-parameters are fedrec's by construction. Clients train with fedrec's own per-client TorchRec
path, ``LocalTrainer.train``, on one trainer and one copy of the data cached per Ray worker process
(Flower's idiom for expensive client state); they return full parameters and the example count, which
Flower's own strategy of the config's name (FedAvg, FedYogi, FedAdam, FedAdagrad, with the config's
server learning rate, betas and tau) aggregates. Two Flower idioms are supported (``--api``):

  numpy    the ``NumPyClient`` + ``flwr.server.strategy.FedAvg`` (ServerApp(server_fn=...)) path
  message  1.40's Message API: ``@ClientApp.train`` with ``ArrayRecord`` and ``flwr.serverapp.strategy.FedAvg``

Which clients train: with a ``schedule`` in SPEC.json (the benchmark's default), Flower's strategy
samples its nodes as usual (fraction_fit) and the server tells each sampled node which data
partition to train, the clients fedrec's sampler picks for that round, so both frameworks train
the same client sequence and their final models can be compared number for number. Without one,
each node trains its own partition and Flower's random sampling decides.

After the simulation the process scores the final global model on the test split with fedrec's
evaluation code (what a fedrec run does before it exits, so both processes do the same work).
Writes DIR/flower.json (per-round client updates and wall seconds, total wall, the final AUC and log
loss, versions, the config it ran) and DIR/params.npz (the final global parameters). Nothing here
imports flwr at module level, so the pure parts are testable in the project venv.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FIT_SPEC_KEY = "bench-spec"  # config key carrying the spec path to the clients
PARTITION_KEY = "bench-partition"  # config key: the data partition a sampled node trains
API_CHOICES = ("numpy", "message")


def client_seed(seed: int, rnd: int, client: int) -> int:
    """fedrec's per-(round, client) training seed (``FederatedRun.seed_of``)."""
    return int(np.random.default_rng([seed, rnd, int(client)]).integers(2**31))


def flower_sampling(num_clients: int, clients_per_round: int) -> tuple[float, int]:
    """(fraction, minimum) making Flower's FedAvg sample exactly ``clients_per_round``: it takes
    ``max(int(n * fraction), minimum)``, and ``int(n * k / n)`` can round down to k - 1."""
    if not 1 <= clients_per_round <= num_clients:
        raise ValueError(f"clients_per_round must be in [1, {num_clients}], got {clients_per_round}")
    return clients_per_round / num_clients, clients_per_round


def round_partitions(schedule: list[list[int]] | None, rnd: int, sampled: int) -> list[int] | None:
    """The partitions the ``sampled`` nodes of round ``rnd`` train (None: their own)."""
    if schedule is None:
        return None
    clients = schedule[rnd - 1]
    if len(clients) != sampled:
        raise ValueError(f"round {rnd}: Flower sampled {sampled} nodes for {len(clients)} scheduled clients")
    return [int(c) for c in clients]


def updated_params(names: list[str], state: dict[str, torch.Tensor], update) -> list[np.ndarray]:
    """A client's full parameters (what Flower uploads) from a ``ClientUpdate``'s deltas."""
    out = []
    for name in names:
        if name in update.dense:
            out.append((state[name] + update.dense[name]).numpy())
        else:
            ids, rows = update.sparse[name]
            new = state[name].clone()
            new[ids] += rows
            out.append(new.numpy())
    return out


def flower_strategy_kwargs(cfg, api: str) -> dict:
    """The config's server optimizer in Flower's terms (its FedOpt family takes eta, beta_1,
    beta_2, tau; FedAvg nothing). fedrec's FedOpt updates embedding rows lazily, Flower's every
    coordinate: the one arithmetic difference left."""
    s = cfg.strategy
    if s.name == "fedavg":
        return {}
    kwargs = {"eta": s.server_lr, "tau": s.tau, "beta_1": s.beta1, "beta_2": s.beta2}
    if s.name == "fedadagrad":  # Flower's FedAdagrad takes no betas (it fixes beta_1 = 0)
        kwargs.pop("beta_1")
        kwargs.pop("beta_2")
    if api == "numpy":
        kwargs["eta_l"] = cfg.client.lr  # the flwr.server.strategy FedOpt signature records it
    return kwargs


STRATEGY_CLASSES = {"fedavg": "FedAvg", "fedyogi": "FedYogi", "fedadam": "FedAdam", "fedadagrad": "FedAdagrad"}


# --- per-worker-process client state ---------------------------------------------------------


@dataclass
class Worker:
    cfg: object  # FederatedConfig
    partitions: list[np.ndarray]
    trainer: object  # LocalTrainer
    names: list[str]


_WORKERS: dict[str, Worker] = {}


def load_spec(path: str) -> dict:
    return json.loads(Path(path).read_text())


def worker(spec_path: str) -> Worker:
    """The data and trainer of this process, built once (the first client it runs pays)."""
    if spec_path not in _WORKERS:
        from fedrec.client.data import ClientData
        from fedrec.client.local import LocalTrainer
        from fedrec.config import config_from_dict
        from fedrec.runtime.data import load_federated_data

        cfg = config_from_dict(load_spec(spec_path)["config"])
        data = load_federated_data(cfg)
        trainer = LocalTrainer(ClientData(data.train, data.partitions), cfg.model)
        names = list(trainer.model.state_dict())
        _WORKERS[spec_path] = Worker(cfg, data.partitions, trainer, names)
    return _WORKERS[spec_path]


def train_client(spec_path: str, client: int, rnd: int, arrays: list[np.ndarray]):
    """One client's local training from the global ``arrays`` (state-dict order): its full
    parameters, example count, mean loss, and the seconds this took (the work fedrec does too)."""
    w = worker(spec_path)
    start = time.perf_counter()
    state = {n: torch.from_numpy(np.require(a, dtype=np.float32, requirements="W")) for n, a in zip(w.names, arrays)}
    w.trainer.load_global(state)
    res = w.trainer.train(client, state, w.cfg.client, client_seed(w.cfg.seed, rnd, client))
    return updated_params(w.names, state, res.update), res.examples, res.loss, time.perf_counter() - start


# --- numpy idiom: NumPyClient + flwr.server.strategy.FedAvg ----------------------------------


def numpy_client_fn(context):
    from flwr.client import NumPyClient

    class BenchClient(NumPyClient):
        def __init__(self, cid: int) -> None:
            self.cid = cid

        def fit(self, parameters, config):
            cid = int(config.get(PARTITION_KEY, self.cid))
            params, n, loss, secs = train_client(str(config[FIT_SPEC_KEY]), cid, int(config["server_round"]), parameters)
            return params, n, {"loss": loss, "client_seconds": secs}

    return BenchClient(int(context.node_config["partition-id"])).to_client()


# --- message idiom: @ClientApp.train + flwr.serverapp.strategy.FedAvg -------------------------


def message_train(msg, context):
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    arrays = msg.content["arrays"].to_numpy_ndarrays()
    cfg = msg.content["config"]
    cid = int(cfg[PARTITION_KEY]) if PARTITION_KEY in cfg else int(context.node_config["partition-id"])
    params, n, loss, secs = train_client(str(cfg[FIT_SPEC_KEY]), cid, int(cfg["server-round"]), arrays)
    reply = RecordDict({"arrays": ArrayRecord(params),
                        "metrics": MetricRecord({"num-examples": n, "train_loss": loss, "client_seconds": secs})})
    return Message(reply, reply_to=msg)


def message_client_app():
    from flwr.clientapp import ClientApp

    app = ClientApp()
    app.train()(message_train)
    return app


# --- the server side (in this process) --------------------------------------------------------


class RoundClock:
    """Wall seconds of each round, from the strategy sampling clients to the aggregate, and the
    seconds its clients spent training (summed over clients)."""

    def __init__(self) -> None:
        self.rounds: list[dict] = []
        self._start = 0.0

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self, rnd: int, updates: int, failures: int, client_seconds: float) -> None:
        self.rounds.append({"round": rnd, "client_updates": updates, "failures": failures,
                            "wall_seconds": time.perf_counter() - self._start, "client_seconds": client_seconds})


def numpy_server_app(spec_path: str, cfg, n: int, init: list[np.ndarray], clock: RoundClock, final: dict, schedule):
    import flwr.server.strategy as strategies
    from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import ServerAppComponents, ServerConfig
    from flwr.serverapp import ServerApp

    class TimedStrategy(getattr(strategies, STRATEGY_CLASSES[cfg.strategy.name])):
        def configure_fit(self, server_round, parameters, client_manager):
            clock.start()
            pairs = super().configure_fit(server_round, parameters, client_manager)
            parts = round_partitions(schedule, server_round, len(pairs))
            if parts is None:
                return pairs
            return [(proxy, FitIns(ins.parameters, {**ins.config, PARTITION_KEY: c})) for (proxy, ins), c in zip(pairs, parts)]

        def aggregate_fit(self, server_round, results, failures):
            out = super().aggregate_fit(server_round, results, failures)
            clock.stop(server_round, len(results), len(failures),
                       sum(float(r.metrics["client_seconds"]) for _, r in results))
            if out[0] is not None:
                final["arrays"] = out[0]
            return out

    fraction, minimum = flower_sampling(n, cfg.clients_per_round)

    def server_fn(context):
        strategy = TimedStrategy(
            fraction_fit=fraction, min_fit_clients=minimum, min_available_clients=n,
            fraction_evaluate=0.0, min_evaluate_clients=0,  # no client-side evaluation
            initial_parameters=ndarrays_to_parameters(init),
            on_fit_config_fn=lambda rnd: {"server_round": rnd, FIT_SPEC_KEY: spec_path},
            **flower_strategy_kwargs(cfg, "numpy"),
        )
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=cfg.rounds))

    final["to_numpy"] = parameters_to_ndarrays
    return ServerApp(server_fn=server_fn)


def message_server_app(spec_path: str, cfg, n: int, init: list[np.ndarray], clock: RoundClock, final: dict, schedule):
    import flwr.serverapp.strategy as strategies
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
    from flwr.serverapp import ServerApp

    class TimedStrategy(getattr(strategies, STRATEGY_CLASSES[cfg.strategy.name])):
        def configure_train(self, server_round, arrays, config, grid):
            clock.start()
            msgs = list(super().configure_train(server_round, arrays, config, grid))
            parts = round_partitions(schedule, server_round, len(msgs))
            if parts is None:
                return msgs
            return [Message(RecordDict({"arrays": arrays, "config": ConfigRecord({**config, PARTITION_KEY: c})}),
                            message_type=MessageType.TRAIN, dst_node_id=m.metadata.dst_node_id)
                    for m, c in zip(msgs, parts)]

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            out = super().aggregate_train(server_round, replies)
            ok = [m for m in replies if not m.has_error()]
            clock.stop(server_round, len(ok), len(replies) - len(ok),
                       sum(float(m.content["metrics"]["client_seconds"]) for m in ok))
            return out

    fraction, minimum = flower_sampling(n, cfg.clients_per_round)
    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        strategy = TimedStrategy(fraction_train=fraction, min_train_nodes=minimum, min_available_nodes=n,
                                 fraction_evaluate=0.0, **flower_strategy_kwargs(cfg, "message"))
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(init), num_rounds=cfg.rounds,
                                train_config=ConfigRecord({FIT_SPEC_KEY: spec_path}))
        final["arrays"] = result.arrays
    final["to_numpy"] = lambda rec: rec.to_numpy_ndarrays()
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", required=True, help="JSON with the FederatedConfig (config_to_dict) and cpus")
    p.add_argument("--out", required=True, help="folder for flower.json and params.npz")
    p.add_argument("--api", choices=API_CHOICES, default="numpy")
    args = p.parse_args(argv)

    import flwr
    import ray
    from flwr.simulation import run_simulation

    from fedrec.config import config_from_dict, config_to_dict
    from fedrec.metrics import binary_metrics
    from fedrec.model import build_model, predict
    from fedrec.runtime.data import load_federated_data

    start = time.perf_counter()
    spec_path = str(Path(args.spec).resolve())
    spec = load_spec(spec_path)
    cfg = config_from_dict(spec["config"])
    random.seed(cfg.seed)  # Flower samples clients with `random`
    data = load_federated_data(cfg)
    n = len(data.partitions)
    model = build_model(data.train.spec, cfg.model, seed=cfg.seed)  # fedrec's initial global model
    names = list(model.state_dict())
    init = [t.detach().numpy().copy() for t in model.state_dict().values()]
    clock, final = RoundClock(), {}
    build = numpy_server_app if args.api == "numpy" else message_server_app
    server_app = build(spec_path, cfg, n, init, clock, final, spec.get("schedule"))
    client_app = message_client_app() if args.api == "message" else _numpy_client_app()
    setup = time.perf_counter() - start
    run_simulation(
        server_app=server_app, client_app=client_app, num_supernodes=n,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"num_cpus": int(spec["cpus"]), "log_to_driver": False}},
    )
    if "arrays" not in final or len(clock.rounds) != cfg.rounds:
        raise SystemExit(f"_flower_app: the simulation finished {len(clock.rounds)} of {cfg.rounds} rounds")
    arrays = final["to_numpy"](final["arrays"])
    # The final evaluation, with fedrec's code: a fedrec run scores its final model before it exits.
    model.load_state_dict({k: torch.from_numpy(np.asarray(a)) for k, a in zip(names, arrays)})
    probs, labels = predict(model, data.test.iter_batches(4096))
    metrics = binary_metrics(labels.numpy(), probs.numpy())
    total = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "params.npz", **dict(zip(names, arrays)))
    (out / "flower.json").write_text(json.dumps({
        "api": args.api, "flwr": flwr.__version__, "ray": ray.__version__, "torch": torch.__version__,
        "clients": n, "scheduled": spec.get("schedule") is not None, "setup_seconds": setup, "total_seconds": total,
        "rounds": clock.rounds, "auc": metrics["auc"], "logloss": metrics["logloss"],
        "config": config_to_dict(cfg),
    }, indent=2, default=str))
    return 0


def _numpy_client_app():
    from flwr.clientapp import ClientApp

    return ClientApp(client_fn=numpy_client_fn)


if __name__ == "__main__":
    # Run from the importable module, not __main__, so Ray workers unpickle the client functions
    # by reference and share this module's per-process cache.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _flower_app import main as _main

    sys.exit(_main())
