"""Before/after image panels for docs/benchmarks.md (Pillow only, no plotting library).

A panel is a grid: one row per case, one column per image (noisy input, baselines, our
outputs, the clean reference when there is one), each tile a crop shown with the same display
range across its row and labelled underneath (name and score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TILE = 200
LINE_HEIGHT = 15
GAP = 6


@dataclass
class Tile:
    """One image of a panel row: the crop to show and its two label lines."""

    image: np.ndarray
    title: str
    subtitle: str = ""


def crop_2d(image: np.ndarray, centre: Sequence[int] | None = None, size: int = 160) -> np.ndarray:
    """A ``size`` x ``size`` crop of a 2D image (or of the middle Z plane of a 3D volume)."""
    image = np.asarray(image, np.float64)
    if image.ndim == 3:
        image = image[image.shape[0] // 2]
    rows, cols = image.shape
    size = min(size, rows, cols)
    centre = centre or (rows // 2, cols // 2)
    top = int(np.clip(centre[0] - size // 2, 0, rows - size))
    left = int(np.clip(centre[1] - size // 2, 0, cols - size))
    return image[top : top + size, left : left + size]


def display_range(image: np.ndarray) -> tuple[float, float]:
    """Robust display limits (0.5th and 99.5th percentiles) for a row of tiles."""
    low, high = np.percentile(image, [0.5, 99.5])
    return float(low), float(max(high, low + 1e-12))


def _to_uint8(image: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    low, high = limits
    scaled = np.clip((image - low) / (high - low), 0.0, 1.0)
    return (scaled * 255 + 0.5).astype(np.uint8)


def save_panel(rows: Sequence[Sequence[Tile]], path: Path, limits_from: int = -1) -> Path:
    """Draw the grid ``rows`` into a PNG at ``path``.

    Parameters
    ----------
    rows : sequence of sequence of Tile
        Tiles of each row, left to right. Rows may have different lengths.
    path : Path
        PNG file to write.
    limits_from : int
        Index of the tile in each row whose percentiles set that row's display range
        (default: the last one, the reference or the best output).
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    labels = [[_label_lines(tile, font) for tile in row] for row in rows]
    label_height = 4 + LINE_HEIGHT * max(len(lines) for row in labels for lines in row)
    columns = max(len(row) for row in rows)
    width = columns * TILE + (columns + 1) * GAP
    height = len(rows) * (TILE + label_height) + (len(rows) + 1) * GAP
    canvas = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        limits = display_range(row[limits_from].image)
        top = GAP + r * (TILE + label_height + GAP)
        for c, tile in enumerate(row):
            left = GAP + c * (TILE + GAP)
            picture = Image.fromarray(_to_uint8(tile.image, limits))
            canvas.paste(picture.resize((TILE, TILE), Image.Resampling.NEAREST), (left, top))
            for k, (text, shade) in enumerate(labels[r][c]):
                draw.text((left + 2, top + TILE + 2 + k * LINE_HEIGHT), text, fill=shade, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _label_lines(tile: Tile, font) -> list[tuple[str, int]]:
    """The title (black) and subtitle (grey) of ``tile``, wrapped at spaces to the tile width."""
    lines = [(text, 0) for text in _wrap(tile.title, font)]
    return lines + [(text, 70) for text in _wrap(tile.subtitle, font)]


def _wrap(text: str, font) -> list[str]:
    """``text`` split at spaces into lines no wider than a tile (a long word stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= TILE - 4:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines
