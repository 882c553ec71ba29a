"""
Convolution vs correlation: the flip
====================================

``torch.nn.functional.conv2d`` slides its kernel over the input as it is: that is a
*correlation*. A true convolution, as in mathematics, numpy, scipy and MATLAB, flips the kernel
first. For a symmetric kernel (a blur) the two agree; for an asymmetric one they do not, and
this example shows the difference.
"""

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import trueconv

# %%
# An impulse shows the kernel
# ---------------------------
# Convolving a single bright pixel reproduces the kernel; correlating it gives the kernel
# turned by 180°. The kernel here is an "L" with a heavier foot, so the turn is easy to see.

kernel = torch.tensor(
    [
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [2.0, 2.0, 2.0, 2.0, 0.0],
    ]
)
impulse = torch.zeros(9, 9)
impulse[4, 4] = 1

as_convolution = trueconv.convolve(impulse, kernel, "same")
as_correlation = trueconv.correlate(impulse, kernel, "same")
as_torch = F.conv2d(impulse[None, None], kernel[None, None], padding=2)[0, 0]
print("torch's conv2d is a correlation:", torch.equal(as_torch, as_correlation))
print("the convolution reproduces the kernel:", torch.equal(as_convolution[2:7, 2:7], kernel))

# %%
# A Sobel filter on shapes
# ------------------------
# The Sobel kernel below, as it is usually printed, weighs the right neighbours +1, +2, +1 and
# the left ones -1, -2, -1. *Correlating* with it (what ``F.conv2d`` does) gives a positive
# response where the image gets brighter to the right. *Convolving* flips it, which for this
# kernel is the same as negating it: the positive response moves to the edges where the image
# gets darker to the right. Red is positive, blue negative.

sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])

yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(160.0), indexing="ij")
shapes = torch.full((96, 160), 0.2)
shapes[(yy - 48) ** 2 + (xx - 42) ** 2 <= 28**2] = 0.9  # a disc
shapes[22:74, 94:146] = 0.9  # a square

edges_conv = trueconv.convolve(shapes, sobel_x, "same", boundary="replicate")
edges_corr = trueconv.correlate(shapes, sobel_x, "same", boundary="replicate")
print("convolution = -correlation for this kernel:", torch.equal(edges_conv, -edges_corr))

# The NN API convolves too: trueconv.conv2d is F.conv2d with the kernel flipped.
nn_out = trueconv.conv2d(shapes[None, None], sobel_x[None, None], padding=1)[0, 0]
zero_padded = trueconv.convolve(shapes, sobel_x, "same")
print("trueconv.conv2d == trueconv.convolve(..., 'same'):", torch.allclose(nn_out, zero_padded))

# %%
# The figure: the first row is the impulse experiment, the second the Sobel filter.

fig, axes = plt.subplots(2, 3, figsize=(12, 6.4), height_ratios=[1, 1.15])
panels = [
    (impulse, "input: one pixel", "gray"),
    (as_convolution, "trueconv.convolve: the kernel", "gray"),
    (as_correlation, "trueconv.correlate = F.conv2d:\nthe kernel turned 180°", "gray"),
    (shapes, "input: shapes", "gray"),
    (edges_conv, "trueconv.convolve(shapes, sobel_x)", "RdBu_r"),
    (edges_corr, "trueconv.correlate(shapes, sobel_x)\n= F.conv2d", "RdBu_r"),
]
for ax, (img, title, cmap) in zip(axes.flat, panels):
    if cmap == "RdBu_r":
        ax.imshow(img, cmap=cmap, vmin=-3, vmax=3)
    else:
        ax.imshow(img, cmap=cmap, vmin=0, vmax=float(img.max()))
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
