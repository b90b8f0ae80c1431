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

    @property
    def lr_private(self) -> float:
        return self.lr if self.private_lr is None else self.private_lr
