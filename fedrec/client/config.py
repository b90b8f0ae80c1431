"""A client's local-training settings: the run config's ``client`` section. Apart from the training
code (``fedrec.client.local``) so that loading a config does not import torch."""

from __future__ import annotations

from pydantic import Field

from fedrec.configbase import StrictModel


class ClientTrainConfig(StrictModel):
    """What a client is told to do in a round (the run config's ``client`` section, as adjusted by
    the strategy's ``configure_fit``: FedProx sets ``proximal_mu``)."""

    lr: float = Field(0.05, gt=0)
    local_epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    proximal_mu: float = Field(0.0, ge=0)  # (mu/2)||w - w_global||^2 added locally; 0 is plain local SGD
    sparse_updates: bool = True  # upload only touched embedding rows (else whole tables)
    # Download only the rows the client's data touches (plus dense weights) instead of the whole model.
    # Off by default: asking for exactly one's own rows tells the server which items a user has seen.
    # Training is identical either way (a client only reads its own rows); only bytes and time change.
    sparse_downloads: bool = False
    batched: bool = True  # train an actor's clients together (fedrec.client.batched); same results
    private_lr: float | None = Field(None, gt=0)  # SGD lr of private tables (model.private); None: lr
    # Federated Reconstruction (Singhal et al., 2021): a client's private rows were last trained
    # against an older global model, so before using the new one it refits them. Epochs over its
    # training rows that move only the private rows (the shared weights frozen as received):
    # before local training (kept, part of training) and before scoring at evaluation (on a copy,
    # discarded, so evaluating never changes training). 0: off.
    refit_private_epochs: int = Field(0, ge=0)
    eval_refit_private_epochs: int = Field(0, ge=0)

    @property
    def lr_private(self) -> float:
        return self.lr if self.private_lr is None else self.private_lr

    def private_only(self, epochs: int) -> ClientTrainConfig:
        """This config for a reconstruction pass: ``epochs`` in which only private rows move (the
        shared weights' lr 0, no proximal term)."""
        return self.model_copy(update={"lr": 0.0, "private_lr": self.lr_private, "local_epochs": epochs,
                                       "proximal_mu": 0.0, "sparse_updates": True})
