"""The paper behind each training method, cited in exported model packages.

The citations are declared once, with each method, in :mod:`selfdenoise.registry`.
"""

from __future__ import annotations

from ..registry import get_method, method_names


def citation(method: str) -> dict[str, str]:
    """``{'text': ..., 'doi': ...}`` for ``method``, from the method registry."""
    spec = get_method(method)
    return {"text": spec.citation, "doi": spec.doi}


CITATIONS: dict[str, dict[str, str]] = {name: citation(name) for name in method_names()}
"""Citation (text and DOI; arXiv DOIs where the venue has none) keyed by method name."""
