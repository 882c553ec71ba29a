"""
Boundary modes side by side
===========================

``'full'`` and ``'same'`` convolutions look past the input's edges; ``boundary=`` says what
they find there. This example shows each of trueconv's five rules on a 1-D signal, on an image
frame, and in what they do to a blur near the border. The names compared with numpy, scipy,
torch, OpenCV, TensorFlow and MATLAB are on the :doc:`../semantics` page.
"""

import matplotlib.pyplot as plt
import torch
from skimage import data

import trueconv

BOUNDARIES = ["fill", "wrap", "symmetric", "reflect", "replicate"]

# %%
# On four samples
# ---------------
# A ``'full'`` convolution with a unit impulse at the kernel's centre returns the input
# extended by half the kernel on each side: the boundary rule made visible.

x = torch.tensor([1.0, 2.0, 3.0, 4.0])
impulse = torch.zeros(5)
impulse[2] = 1  # a 5-tap kernel: two samples of boundary on each side

for boundary in BOUNDARIES:
    y = trueconv.convolve(x, impulse, "full", boundary=boundary)
    left, middle, right = y[:2].tolist(), y[2:-2].tolist(), y[-2:].tolist()
    print(f"{boundary:10s} {left} | {middle} | {right}")

# %%
# On an image, and in a blur
# --------------------------
# The same trick in 2-D (top row): a 61 × 61 impulse kernel frames a 96 × 96 crop of
# ``camera`` (inside the orange square) with 30 pixels of each boundary; ``'fill'`` uses
# ``fill_value``, here mid-grey (0.5).
#
# The bottom row blurs the crop with a 21 × 21 box in ``'same'`` mode: ``'fill'`` with zeros
# darkens the border, ``'wrap'`` pulls in the opposite edge, and the three mirroring rules keep
# the border's own brightness.

image = torch.from_numpy(data.camera()[40:232:2, 150:342:2]).to(torch.float32) / 255
n = image.shape[0]
frame = torch.zeros(61, 61)
frame[30, 30] = 1
box = torch.full((21, 21), 1 / 21**2)

fig, axes = plt.subplots(2, 5, figsize=(13, 5.8))
for col, boundary in enumerate(BOUNDARIES):
    extended = trueconv.convolve(image, frame, "full", boundary=boundary, fill_value=0.5)
    axes[0, col].imshow(extended, cmap="gray", vmin=0, vmax=1)
    square = plt.Rectangle((29.5, 29.5), n, n, fill=False, edgecolor="tab:orange", lw=1.5)
    axes[0, col].add_patch(square)
    axes[0, col].set_title(f"boundary={boundary!r}")

    blurred = trueconv.convolve(image, box, "same", boundary=boundary)
    axes[1, col].imshow(blurred, cmap="gray", vmin=0, vmax=1)
    axes[1, col].set_title(f"21×21 box blur, {boundary!r}", fontsize=10)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
