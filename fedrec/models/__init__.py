"""Models beyond TorchRec's DLRM family that fedrec ships (the registry is ``fedrec.model.build_model``)."""
