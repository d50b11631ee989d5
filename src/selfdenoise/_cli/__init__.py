"""Implementations of the ``selfdenoise`` commands (the parser is :mod:`selfdenoise.cli`)."""
