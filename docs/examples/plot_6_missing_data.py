"""
Missing pixels: normalized convolution
======================================

A photograph with dead pixels and a scratch, marked NaN. A plain convolution spreads every NaN
over a kernel-sized hole (as ``scipy.ndimage`` and ``scipy.signal`` do);
``nan_policy='interpolate'`` computes the *normalized convolution* instead, the kernel-weighted
mean of the pixels that are present, rescaled by the kernel's sum — astropy's
``nan_treatment='interpolate'``, here on tensors, with every method and autograd.
"""

import math

import matplotlib.pyplot as plt
import torch
from skimage import data

import trueconv

image = torch.from_numpy(data.camera()).to(torch.float32)[96:352, 128:384] / 255  # 256 x 256
generator = torch.Generator().manual_seed(0)
damaged = image.clone()
damaged[torch.rand(image.shape, generator=generator) < 0.02] = math.nan  # 2 % dead pixels
damaged[120:123, 40:220] = math.nan  # a scratch, 3 pixels wide
damaged[180:200, 170:190] = math.nan  # a missing 20 x 20 block

t = torch.arange(-3, 4, dtype=torch.float32)
g = torch.exp(-(t**2) / (2 * 1.5**2))
kernel = torch.outer(g, g) / g.sum() ** 2  # 7 x 7 Gaussian, sigma 1.5, sums to 1

# %%
# Three ways to blur it
# ---------------------
# ``'propagate'`` (the default) puts NaN wherever the direct sum has a NaN term; ``'fill'``
# replaces missing pixels by ``fill_value`` (0: the holes darken the blur);
# ``'interpolate'`` divides by the weight of the pixels that are present, so the result has
# the brightness of the image around each hole. Where no pixel under the kernel is present —
# the middle of the 20 × 20 block, more than 3 pixels from its edge — the result stays NaN.
# ``boundary='reflect'`` keeps the frame bright.

results = {
    "propagate": trueconv.convolve(damaged, kernel, "same", boundary="reflect"),
    "fill (0)": trueconv.convolve(damaged, kernel, "same", boundary="reflect", nan_policy="fill"),
    "interpolate": trueconv.convolve(
        damaged, kernel, "same", boundary="reflect", nan_policy="interpolate"
    ),
}
clean = trueconv.convolve(image, kernel, "same", boundary="reflect")
for name, out in results.items():
    present = ~torch.isnan(out)
    error = (out[present] - clean[present]).abs().mean()
    nan_share = 100 * (~present).float().mean()
    print(f"{name:12s} NaN outputs {nan_share:5.1f} %, mean |error| vs undamaged {error:.4f}")

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
cmap = plt.get_cmap("gray").copy()
cmap.set_bad("red")  # NaN in red
axes[0].imshow(damaged, cmap=cmap, vmin=0, vmax=1)
axes[0].set_title("input: NaN in red")
for ax, (name, out) in zip(axes[1:], results.items()):
    ax.imshow(out, cmap=cmap, vmin=0, vmax=1)
    ax.set_title(f"nan_policy='{name.split()[0]}'")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %%
# A mask instead of NaN, and ``preserve_nan``
# -------------------------------------------
# ``mask=`` marks pixels missing without writing NaN into the data (``True`` = missing, as
# ``numpy.ma`` and astropy). ``preserve_nan=True`` puts NaN back where a pixel was missing,
# so only the gaps' surroundings are smoothed, not the gaps filled.

mask = torch.isnan(damaged)
zeroed = torch.nan_to_num(damaged)
filled = trueconv.convolve(
    zeroed, kernel, "same", boundary="reflect", nan_policy="interpolate", mask=mask
)
kept = trueconv.convolve(
    damaged, kernel, "same", boundary="reflect", nan_policy="interpolate", preserve_nan=True
)
print("mask= equals NaN in the data:", torch.allclose(filled, results["interpolate"]))

fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
for ax, (title, out) in zip(axes, [("mask=", filled), ("preserve_nan=True", kept)]):
    ax.imshow(out, cmap=cmap, vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
