"""The paper behind each training method, cited in exported model packages."""

from __future__ import annotations

CITATIONS: dict[str, dict[str, str]] = {
    "neighbor2neighbor": {
        "text": "Huang, Li, Jia, Lu, Liu. Neighbor2Neighbor: Self-Supervised Denoising from "
        "Single Noisy Images. CVPR 2021.",
        "doi": "10.48550/arXiv.2101.02824",
    },
    "noise2same": {
        "text": "Xie, Wang, Ji. Noise2Same: Optimizing A Self-Supervised Bound for Image "
        "Denoising. NeurIPS 2020.",
        "doi": "10.48550/arXiv.2010.11971",
    },
    "n2v": {
        "text": "Krull, Buchholz, Jug. Noise2Void - Learning Denoising from Single Noisy "
        "Images. CVPR 2019.",
        "doi": "10.48550/arXiv.1811.10980",
    },
    "n2v2": {
        "text": "Höck, Buchholz, Brachmann, Jug, Freytag. N2V2 - Fixing Noise2Void "
        "Checkerboard Artifacts with Modified Sampling Strategies and a Tweaked Network "
        "Architecture. ECCV Workshops 2022.",
        "doi": "10.48550/arXiv.2211.08512",
    },
    "noise2self": {
        "text": "Batson, Royer. Noise2Self: Blind Denoising by Self-Supervision. ICML 2019.",
        "doi": "10.48550/arXiv.1901.11365",
    },
    "supervised": {
        "text": "Lehtinen, Munkberg, Hasselgren, Laine, Karras, Aittala, Aila. Noise2Noise: "
        "Learning Image Restoration without Clean Data. ICML 2018.",
        "doi": "10.48550/arXiv.1803.04189",
    },
}
"""Citation (text and DOI; arXiv DOIs where the venue has none) keyed by method name."""
