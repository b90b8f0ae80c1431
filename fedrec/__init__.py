"""fedrec: federated recommender training on Ray with TorchRec."""

__version__ = "0.1.0"
