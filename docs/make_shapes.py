"""Draw ``docs/shapes.png``, the README's test image: a disc, a square and a triangle.

    python docs/make_shapes.py

The README's pictures of ``trueconv apply`` are made from it by the commands shown there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 96, 192
BACKGROUND, SHAPE = 40, 210


def shapes() -> np.ndarray:
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    disc = (y - 48) ** 2 + (x - 40) ** 2 <= 26.5**2
    square = (abs(y - 48) <= 24) & (abs(x - 100) <= 24)
    triangle = (y >= 22) & (y <= 74) & (abs(x - 160) <= (y - 22) / 2)
    image = np.full((HEIGHT, WIDTH), BACKGROUND, np.uint8)
    image[disc | square | triangle] = SHAPE
    return image


if __name__ == "__main__":
    Image.fromarray(shapes()).save(Path(__file__).with_name("shapes.png"), optimize=True)
