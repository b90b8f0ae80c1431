"""The central DLRM trained on the preprocessing stream (``fedrec data preprocess --train-steps``).

The data layer owns the stream and times the trainer's waits; this module only supplies the
trainer (``data_pipeline.preprocess.run.StreamTrainer``): TorchRec's DLRM built from the
stream's feature spec (``fedrec.model.build_model`` with the default ``dlrm``, the model every fedrec trainer uses), one
optimizer step per batch. The top-level CLI injects ``make_stream_trainer`` into the data command,
so ``data_pipeline`` never imports ``fedrec``.
"""

from __future__ import annotations

import torch

from data_pipeline.batches import FeatureSpec
from data_pipeline.preprocess.run import TrainerOptions
from fedrec.model import ModelConfig, build_model, forward_logits


class DLRMStreamTrainer:
    """One Adagrad step of the DLRM per TorchRec batch (Adagrad: the DLRM reference optimizer for
    embeddings; its per-coordinate steps suit ids seen once in a while)."""

    def __init__(self, spec: FeatureSpec, options: TrainerOptions | None = None) -> None:
        options = options or TrainerOptions()
        torch.set_num_threads(options.threads)
        self.model = build_model(spec, ModelConfig(embedding_dim=options.embedding_dim), seed=options.seed)
        self.optimizer = torch.optim.Adagrad(self.model.parameters(), lr=options.lr)
        self.loss = torch.nn.BCEWithLogitsLoss()

    def step(self, batch) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(forward_logits(self.model, batch), batch.labels)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def make_stream_trainer(spec: FeatureSpec, options: TrainerOptions) -> DLRMStreamTrainer:
    return DLRMStreamTrainer(spec, options)
