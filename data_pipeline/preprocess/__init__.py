"""Disaggregated preprocessing (``fedrec data preprocess``): parse and transform in a pool of Ray
Data workers, stream TorchRec batches to a trainer, and measure how long the trainer waits."""
