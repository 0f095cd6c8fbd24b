"""The ``tradeops`` command line."""
