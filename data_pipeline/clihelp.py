"""What every ``fedrec`` command family shares on the command line: the help formatter.

It lives at the bottom layer so ``data_pipeline``, ``sharding`` and ``sampling`` can build their
sub-commands without importing ``fedrec`` (the top layer that composes them into one CLI).
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows defaults."""
