"""Parameter counts and FLOPs of the DARTS, NAS-Bench-101, NAS-Bench-Macro and MobileNetV3-like
spaces against the published numbers.

For each published architecture: the space's closed form (``space.param_count``/``space.flops``),
the count of the network ``space.build`` makes (``sum(p.numel())``; multiply-adds counted by
forward hooks), and the published value with its source. Then the closed forms against built
networks on random architectures (``--n-random`` per space, seed 0), where no published number
exists. No reference data is needed: the published numbers are listed below with their sources.

    python benchmarks/space_costs.py              # about 1-2 minutes on one thread
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

# --- published numbers ------------------------------------------------------------------------
#: DARTS evaluation network, CIFAR-10 (C=36, 20 layers, auxiliary head not counted), in millions.
#: DARTS-V2: Liu et al., ICLR 2019, Table 1 (3.3M; the training log prints "param size =
#: 3.349342MB"). DARTS-V1: the same table gives 3.3M, but the released DARTS_V1 cell has a
#: skip_connect where DARTS_V2 has a dil_conv_3x3, so the released cell has 3.17M (see text).
#: PC-DARTS: Xu et al., ICLR 2020, Table 1 (3.6M). DrNAS: the released DrNAS_cifar10 cell, 4.1M
#: (the DrNAS repository's README; the paper's 4.0M is a variant whose cell is not released).
DARTS_PUBLISHED_M = {"darts_v1": (3.3, "DARTS paper Table 1 (first order)"),
                     "darts_v2": (3.3, "DARTS paper Table 1; training log 3.349342M"),
                     "pc_darts": (3.6, "PC-DARTS paper Table 1"),
                     "drnas": (4.1, "DrNAS code release README")}
#: NAS-Bench-101 trainable parameters of the official network (stem 128, 3 stacks x 3 cells),
#: as the benchmark's API returns them for these cells.
NB101_PUBLISHED: dict[str, tuple[list[list[int]], list[str], int, str]] = {
    "README example": (
        [[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
         [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
        ["input", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output"],
        2_694_282, "google-research/nasbench README / NASBench.ipynb query"),
    "README example, stored representative": (
        [[0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
        ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"],
        2_694_282, "the same query's returned module_adjacency/module_operations"),
    "NNI example (hash 00005c14...)": (
        [[0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 1, 0],
         [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
        ["input", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
        8_555_530, "NNI benchmark docs (8.55553M), the full entry 8555530"),
    "NASLib raw entry (hash 00019e2c...)": (
        [[0, 1, 0, 1, 0, 0, 0], [0, 0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
         [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
        ["input", "maxpool3x3", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "maxpool3x3", "output"],
        3_468_426, "a printed NAS-Bench-101 dataset entry (NASLib API)"),
}
#: NAS-Bench-Macro (CIFAR-10, 32x32): params and flops fields of nas-bench-macro_cifar10.json
#: (the benchmark release; flops = multiply-adds of conv and linear weights)
MACRO_PUBLISHED = {
    "02012100": (890666, 47327744), "11111221": (2181386, 65012224), "00011110": (1118378, 31390208),
    "02012220": (1886890, 65495552), "00220121": (2038570, 54901248), "10000011": (1203722, 24932864),
    "22222200": (1269610, 79266304), "22222211": (2077034, 92070400), "11222222": (2885834, 91628032),
    "00100110": (942442, 22669824), "22012012": (2028138, 72819200), "22012112": (2147818, 77068800),
    "11210000": (603722, 34902528), "02210000": (628522, 38793728),
}
#: HardCoRe-NAS A-F (ImageNet, 224x224, 1000 classes): parameters of timm's hardcorenas_a ... _f
HARDCORENAS_PUBLISHED = {"a": 5260232, "b": 5176544, "c": 5521224, "d": 7500208, "e": 8070992, "f": 8199688}


def n_params(net: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def darts() -> None:
    from nasforge.spaces import get_space
    from nasforge.spaces.darts import GENOTYPES

    space = get_space("darts")
    print("\nDARTS evaluation network, CIFAR-10, C=36, 20 layers (auxiliary head not counted)")
    print("| genotype | closed form | built network | published | source | FLOPs (multiply-adds, 32x32) |")
    print("|---|---|---|---|---|---|")
    for name in ("darts_v1", "darts_v2", "pc_darts", "drnas"):
        g = GENOTYPES[name]
        closed = space.param_count(g)
        net = space.build(g, auxiliary=True)
        built = n_params(net) - n_params(net.auxiliary_head)
        pub, src = DARTS_PUBLISHED_M[name]
        print(f"| {name} | {closed:,} | {built:,} | {pub}M | {src} | {space.flops(g) / 1e6:.1f}M |", flush=True)


def nb101(n_random: int) -> None:
    from nasforge.spaces import get_space

    space = get_space("nb101")
    print("\nNAS-Bench-101 official network (stem 128, 3 stacks x 3 cells, CIFAR-10), trainable parameters")
    print("| cell | closed form | built network | official | source |")
    print("|---|---|---|---|---|")
    for label, (matrix, ops, official, src) in NB101_PUBLISHED.items():
        a = space.coerce((matrix, ops))
        built = n_params(space.build(a), trainable_only=True)
        print(f"| {label} | {space.param_count(a):,} | {built:,} | {official:,} | {src} |", flush=True)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    bad = 0
    sizes = []
    for _ in range(n_random):
        a = space.sample(rng)
        c, b = space.param_count(a), n_params(space.build(a), trainable_only=True)
        bad += c != b
        sizes.append(c)
    print(f"random cells: closed form == built network for {n_random - bad} of {n_random} "
          f"(params {min(sizes):,} .. {max(sizes):,}; {time.perf_counter() - t:.0f} s)")


def macro(n_random: int) -> None:
    from nasforge.spaces import get_space
    from nasforge.spaces.mbconv import count_macs

    space = get_space("macro")
    print("\nNAS-Bench-Macro, CIFAR-10, 32x32: params and FLOPs (multiply-adds) against the released table")
    print("| arch | params: closed form | built | published | FLOPs: closed form | hooks on the built network | published |")
    print("|---|---|---|---|---|---|---|")
    ok = 0
    for text, (p_pub, f_pub) in MACRO_PUBLISHED.items():
        net = space.build(text)
        p_c, p_b, f_c, f_b = space.param_count(text), n_params(net), space.flops(text), count_macs(net, 32)
        ok += p_c == p_b == p_pub and f_c == f_b == f_pub
        print(f"| {text} | {p_c:,} | {p_b:,} | {p_pub:,} | {f_c:,} | {f_b:,} | {f_pub:,} |", flush=True)
    print(f"{ok} of {len(MACRO_PUBLISHED)} published architectures match exactly in params and FLOPs")
    params = [space.param_count(a) for a in space]
    flops = [space.flops(a) for a in space]
    print(f"all {len(params):,} architectures (closed forms): params {min(params):,} .. {max(params):,}, "
          f"FLOPs {min(flops) / 1e6:.1f}M .. {max(flops) / 1e6:.1f}M")
    rng = np.random.default_rng(0)
    bad = 0
    for _ in range(n_random):
        a = space.sample(rng)
        net = space.build(a)
        bad += (space.param_count(a), space.flops(a)) != (n_params(net), count_macs(net, 32))
    print(f"random architectures: closed forms == built network for {n_random - bad} of {n_random}")


def mbv3() -> None:
    from nasforge.spaces.macro import HARDCORENAS, MBV3Space

    space = MBV3Space()  # ImageNet settings: 224x224, 1000 classes
    print("\nMobileNetV3-like space (HardCoRe-NAS), ImageNet 224x224, 1000 classes")
    print("| network | closed form | built network | timm | FLOPs (closed form) |")
    print("|---|---|---|---|---|")
    for name, pub in HARDCORENAS_PUBLISHED.items():
        a = HARDCORENAS[name]
        built = n_params(space.build(a))
        print(f"| HardCoRe-NAS {name.upper()} | {space.param_count(a):,} | {built:,} | {pub:,} | "
              f"{space.flops(a) / 1e6:.1f}M |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-random", type=int, default=30, help="random architectures per space (closed form vs built)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    darts()
    nb101(args.n_random)
    macro(args.n_random)
    mbv3()
    print(f"\n{time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
