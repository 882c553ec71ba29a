"""
Reverb: convolving a signal with a room
=======================================

A room's impulse response (IR) is what a microphone records after a single click: the direct
sound, a few early echoes from the nearest walls, then a dense tail that decays. Convolving any
dry recording with it places the recording in that room. Here both are synthetic (no download):
a few plucked notes, and a stereo IR made of echoes and exponentially decaying noise.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

import trueconv

rate = 16_000  # samples per second
gen = torch.Generator().manual_seed(0)

# %%
# A dry signal: four plucked notes
# --------------------------------
# Each note is a few harmonics under a 2 ms attack and a fast exponential decay, 0.35 s apart.

dry = torch.zeros(int(2.0 * rate))
t = torch.arange(int(0.3 * rate)) / rate
for i, freq in enumerate([262.0, 330.0, 392.0, 523.0]):  # C4 E4 G4 C5
    note = sum(torch.sin(2 * math.pi * h * freq * t) / h for h in (1, 2, 3, 4))
    start = int(i * 0.35 * rate)
    envelope = (1 - torch.exp(-t / 0.002)) * torch.exp(-t / 0.05)
    dry[start : start + len(t)] += 0.5 * note * envelope

# %%
# A stereo impulse response
# -------------------------
# The direct sound at 0 ms, early reflections over the first 40 ms, and a noise tail whose
# level falls by 60 dB in 0.9 s (the room's RT60). Each ear gets its own noise, which is what
# makes a reverb sound wide; a 5-tap smoothing (itself a convolution) takes the hiss off it,
# as walls absorb high frequencies more than low ones.

rt60 = 0.9
n_ir = int(1.2 * rate)
tail_t = torch.arange(n_ir) / rate
noise = torch.randn(2, n_ir, generator=gen)
smooth = torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0]) / 19**0.5  # unit energy: keeps the power
noise = trueconv.convolve(noise, smooth, "same")  # a 1-D kernel filters every row
ir = 0.25 * noise * 10 ** (-3 * tail_t / rt60)  # -60 dB at rt60
ir[:, : int(0.005 * rate)] = 0  # the tail starts after the first echoes
ir[:, 0] = 1.0  # direct sound
for delay_ms, gain in [(7, 0.6), (13, -0.45), (19, 0.4), (29, -0.3), (37, 0.25)]:
    for channel, spread_ms in enumerate((0.0, 1.5)):  # the right ear hears them a bit later
        ir[channel, int((delay_ms + spread_ms) * rate / 1000)] += gain

# %%
# Convolve
# --------
# ``dims=-1`` convolves along time and broadcasts the rest: the mono signal meets each
# channel of the IR, giving a stereo result of ``len(dry) + len(ir) - 1`` samples (``'full'``
# keeps the tail). ``'auto'`` picks a transform method for a kernel this long.

print("method:", trueconv.choose_method(dry, ir, "full", dims=-1))
wet = trueconv.convolve(dry, ir, "full", dims=-1)
wet = wet / wet.abs().max()  # peak at full scale, as `trueconv apply --normalize` does
print("dry", tuple(dry.shape), "* ir", tuple(ir.shape), "->", tuple(wet.shape))

# The same numbers as numpy's direct sum (checked on the first quarter second, which depends
# only on the first quarter second of each operand):
m = rate // 4
direct = np.convolve(dry[:m].double().numpy(), ir[0, :m].double().numpy())[:m]
exact = trueconv.convolve(dry.double(), ir[0].double())[:m]
print("matches numpy.convolve:", np.allclose(exact.numpy(), direct))

# %%
# Waveforms and spectrograms
# --------------------------
# The reverb smears each note into the next, and the tail rings on for about a second after
# the last one; on the spectrograms the harmonics' horizontal lines get long decaying tails.

time = torch.arange(wet.shape[-1]) / rate
fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True)
axes[0].plot(time[: len(dry)], dry, lw=0.6)
axes[0].set_title("dry signal")
axes[1].plot(tail_t, ir[0], lw=0.6, label="left")
axes[1].plot(tail_t, ir[1], lw=0.6, alpha=0.6, label="right")
axes[1].set_title(f"impulse response (RT60 {rt60} s)")
axes[1].legend(loc="upper right")
axes[2].plot(time, wet[0], lw=0.6, label="left")
axes[2].plot(time, wet[1], lw=0.6, alpha=0.6, label="right")
axes[2].set_title("wet = trueconv.convolve(dry, ir, 'full', dims=-1)")
axes[2].set_xlabel("time (s)")
axes[2].legend(loc="upper right")
fig.tight_layout()
plt.show()

# %%

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
dry_padded = torch.zeros(wet.shape[-1])  # the same time axis as the wet signal
dry_padded[: len(dry)] = dry
floor = 1e-6 * torch.randn(wet.shape[-1], generator=gen)  # keeps log(power) finite in silence
for ax, signal, title in [(axes[0], dry_padded, "dry"), (axes[1], wet[0], "wet (left)")]:
    ax.specgram((signal + floor).numpy(), NFFT=512, Fs=rate, noverlap=384, cmap="magma", vmin=-120)
    ax.set_title(title)
    ax.set_xlabel("time (s)")
axes[0].set_ylim(0, 3000)
axes[0].set_ylabel("frequency (Hz)")
fig.tight_layout()
plt.show()
