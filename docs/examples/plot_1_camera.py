"""
A kernel and what it does to a photograph
=========================================

Three classic 2-D kernels — a Gaussian blur, a Laplacian and a sharpening kernel — applied to
scikit-image's ``camera`` photograph (512 × 512, shipped inside the scikit-image wheel) with
:func:`trueconv.convolve` in ``'same'`` mode. ``boundary='reflect'`` extends the image past its
edges as OpenCV's default border does, so the blur keeps the frame's brightness.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

import trueconv

image = torch.from_numpy(data.camera()).to(torch.float32) / 255  # 512 x 512, values 0..1

# %%
# The kernels
# -----------
# A Gaussian is separable: the outer product of two 1-D Gaussians. ``method='auto'`` notices
# that (it finds rank-1 kernels itself) and runs one 1-D pass per dim when that is cheaper;
# :func:`trueconv.choose_method` says what it picked.

t = torch.arange(-9, 10, dtype=torch.float32)
g = torch.exp(-(t**2) / (2 * 3.0**2))
gaussian = torch.outer(g, g) / g.sum() ** 2  # 19 x 19, sigma 3, sums to 1
laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
sharpen = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])

for name, k in [("gaussian", gaussian), ("laplacian", laplacian), ("sharpen", sharpen)]:
    method = trueconv.choose_method(image, k, "same", boundary="reflect")
    print(f"{name:9s} {tuple(k.shape)} -> method {method!r}")

# %%
# Their effect
# ------------
# The top row shows each kernel's taps, the bottom row the image convolved with it. The
# Laplacian's output is signed: grey is 0, dark and light are the two sides of an edge.

kernels = {"Gaussian blur, σ = 3": gaussian, "Laplacian": laplacian, "sharpen": sharpen}
results = {
    title: (k, trueconv.convolve(image, k, "same", boundary="reflect"))
    for title, k in kernels.items()
}

fig, axes = plt.subplots(2, 4, figsize=(12, 5.5), height_ratios=[1, 2.2])
axes[0, 0].axis("off")
axes[1, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
axes[1, 0].set_title("input: skimage.data.camera()")
for col, (title, (kernel, out)) in enumerate(results.items(), start=1):
    lim = float(kernel.abs().max())
    axes[0, col].imshow(kernel, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[0, col].set_title(f"kernel {kernel.shape[0]}×{kernel.shape[1]}", fontsize=10)
    if kernel.shape[0] <= 5:
        for (i, j), v in np.ndenumerate(kernel.numpy()):
            colour = "white" if abs(v) > lim / 2 else "black"
            axes[0, col].text(j, i, f"{v:g}", ha="center", va="center", fontsize=9, color=colour)
    if title == "Laplacian":
        axes[1, col].imshow(out, cmap="gray", vmin=-0.25, vmax=0.25)
    else:
        axes[1, col].imshow(out.clamp(0, 1), cmap="gray", vmin=0, vmax=1)
    axes[1, col].set_title(title)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %%
# A blur keeps the mean brightness when its kernel sums to 1 and the boundary brings in real
# pixels rather than zeros:

blurred = results["Gaussian blur, σ = 3"][1]
print(f"mean before {image.mean():.4f}, after {blurred.mean():.4f}")
