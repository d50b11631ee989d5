"""Is this CPU's bf16 convolution backward deterministic? The check behind ``GradientGuard``.

On an AMD EPYC with AVX-512 BF16 but no AMX (torch 2.13.0+cpu), the bf16 weight gradient of
a 3D convolution over a very small volume (2x8x8) came back NaN now and then, and finite but
different from call to call almost always: the kernel reads memory it did not write. The
training loop skips bf16 steps with non-finite gradients on the CPU for that reason
(``selfdenoise._run_parts.GradientGuard``; docs/benchmarks.md, "bf16 training on CPUs with
AVX-512 BF16"). This script repeats the convolutions of a small 3D U-Net (one thread, the
same inputs every call, the shapes in turn, so that each call finds memory the others used)
and counts, per layer, the calls whose weight gradient is NaN and those that differ from the
layer's first call. Run it after a PyTorch upgrade: all zeros means the guard has nothing
left to catch on this machine. Float32 runs as the control (``--dtype float32``). ``--ndim 2``
repeats the 2D U-Net's convolutions (the CPU recipe's 16 patches of 64x64) and some thin
inputs: the check behind ``amp='auto'`` taking bf16 for 2D models on these CPUs
(``selfdenoise.device.cpu_has_fast_bf16``).

Examples
--------
python benchmarks/bf16_determinism.py
python benchmarks/bf16_determinism.py --ndim 2
python benchmarks/bf16_determinism.py --calls 100 --dtype float32
"""

from __future__ import annotations

import argparse

import torch
from _report import machine_line

LAYERS = (
    # batch, channels in, volume (Z, Y, X), channels out: a depth-2 U-Net on 8x32x32 patches
    (2, 32, (8, 32, 32), 32),
    (2, 32, (4, 16, 16), 64),
    (2, 64, (4, 16, 16), 64),
    (2, 64, (2, 8, 8), 128),
    (2, 128, (2, 8, 8), 128),
    (2, 128, (4, 16, 16), 64),
)
LAYERS_2D = (
    # a depth-2 U-Net on the 2D CPU recipe's batch (16 patches of 64x64), then thin inputs
    (16, 1, (64, 64), 32),
    (16, 32, (64, 64), 32),
    (16, 32, (32, 32), 64),
    (16, 64, (32, 32), 64),
    (16, 64, (16, 16), 128),
    (16, 128, (16, 16), 128),
    (16, 128, (32, 32), 64),
    (16, 32, (64, 64), 1),
    (2, 64, (2, 8), 128),
    (2, 128, (2, 2), 128),
    (2, 64, (4, 4), 128),
)


def weight_gradient(conv, inputs: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """The weight gradient of ``mean(conv(inputs)**2)`` under autocast to ``dtype``."""
    conv.zero_grad()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = conv(inputs)
    out.float().square().mean().backward()
    return conv.weight.grad.detach().clone()


def count_faults(
    calls: int, dtype: torch.dtype | None, seed: int = 0, layers: tuple = LAYERS
) -> dict:
    """Per layer: ``(NaN calls, calls that differ from the first, largest relative change)``."""
    torch.manual_seed(seed)
    conv_class = {2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
    convs = {shape: conv_class[len(shape[2])](shape[1], shape[3], 3, padding=1) for shape in layers}
    inputs = {shape: torch.randn(shape[0], shape[1], *shape[2]) for shape in layers}
    first: dict = {}
    faults = {shape: [0, 0, 0.0] for shape in layers}
    for _ in range(calls):
        for shape in layers:
            grad = weight_gradient(convs[shape], inputs[shape], dtype)
            if shape not in first:
                first[shape] = grad
            elif not torch.isfinite(grad).all():
                faults[shape][0] += 1
            elif not torch.equal(grad, first[shape]):
                faults[shape][1] += 1
                change = float((grad - first[shape]).norm() / first[shape].norm())
                faults[shape][2] = max(faults[shape][2], change)
    return faults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=60, help="calls per layer")
    parser.add_argument("--dtype", choices=("bf16", "float32"), default="bf16")
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=3, help="2D or 3D layers")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dtype = torch.bfloat16 if args.dtype == "bf16" else None
    print(machine_line())
    capabilities = getattr(torch.cpu, "get_capabilities", dict)()
    print(f"amx_bf16={capabilities.get('amx_bf16')} avx512_bf16={capabilities.get('avx512_bf16')}")
    print(f"{args.dtype}, one thread, {args.calls} calls per layer (the first is the reference)")
    print("| batch, channels in, volume, channels out | NaN | differ | largest relative change |")
    print("|---|---|---|---|")
    layers = LAYERS if args.ndim == 3 else LAYERS_2D
    for (batch, c_in, volume, c_out), (nan, differ, change) in count_faults(
        args.calls, dtype, layers=layers
    ).items():
        size = "x".join(map(str, volume))
        print(f"| {batch}, {c_in}, {size}, {c_out} | {nan} | {differ} | {change:.1e} |")


if __name__ == "__main__":
    main()
