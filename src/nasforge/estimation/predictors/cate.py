"""CATE: computation-aware architecture encodings learnt by a small Transformer (Yan et al., ICML 2021).

Pre-training, as we read the paper, at CPU scale:

- **Computation-aware pairs.** Architectures are sorted by their cost (``pair_by``: the space's
  ``flops`` or ``param_count``); each architecture's partner is drawn uniformly from the
  ``window`` architectures nearest to it in that order, so the two have similar computation.
- **Masked-operation prediction.** Each architecture is a sequence of graph nodes (its
  ``space.graph`` view: the node labels as tokens, the node index as position). Self-attention
  layers (shared by both members of a pair) attend along the graph (a node sees itself, its
  predecessors and its successors); a cross-attention layer then lets each member attend to its
  partner's states. A random ``mask_rate`` share of the operation nodes (at least one) is
  replaced by a mask token and predicted (cross-entropy), so the model learns which operations
  go together in computationally similar cells.
- **The encoding** is the mean over nodes of the last self-attention layer's states, with no
  mask and no partner: a ``dim``-long vector per architecture.

Pre-training draws every random number from ``seed``; the result (weights and, for a finite
space of at most 100,000 architectures, the encoding of every architecture) is cached under
``cache_dir`` (default ``$NASFORGE_CACHE/cate`` or ``~/.cache/nasforge/cate``), keyed by the
space and every setting, so the second use costs a file read. torch is imported here.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import check_int
from nasforge.estimation.predictors.graph import GraphTensors
from nasforge.spaces.base import SearchSpace

#: bumped when the model or the training changes, so old caches are not reused
VERSION = 1
PAIR_BY = ("flops", "params")
MAX_TABLE = 100_000


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("NASFORGE_CACHE")
    if env:
        return Path(env) / "cate"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nasforge" / "cate"


def _model(n_tokens: int, n_pos: int, dim: int, layers: int, heads: int) -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, h: Any, kv: Any, mask: Any) -> Any:
            a, _ = self.attn(self.n1(h), self.n1(kv), self.n1(kv), attn_mask=mask, need_weights=False)
            h = h + a
            return h + self.ff(self.n2(h))

    class CATEModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(n_tokens, dim)
            self.pos = nn.Embedding(n_pos, dim)
            self.selfs = nn.ModuleList(Block() for _ in range(layers))
            self.cross = Block()
            self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_tokens))
            self.heads = heads

        def encode(self, tokens: Any, graph_mask: Any) -> Any:
            B, n = tokens.shape
            h = self.tok(tokens) + self.pos(torch.arange(n).expand(B, n))
            m = graph_mask.repeat_interleave(self.heads, dim=0)
            for blk in self.selfs:
                h = blk(h, h, m)
            return h

        def forward(self, ta: Any, ma: Any, tb: Any, mb: Any) -> Any:
            ha, hb = self.encode(ta, ma), self.encode(tb, mb)
            return self.out(self.cross(ha, hb, None)), self.out(self.cross(hb, ha, None))

    return CATEModel()


class CATEEncoder:
    """A pre-trained CATE encoder for one space (build it with :func:`cate_encoder`)."""

    def __init__(self, space: SearchSpace, dim: int = 32, layers: int = 2, heads: int = 2, epochs: int = 20,
                 batch_size: int = 256, lr: float = 1e-3, mask_rate: float = 0.2, window: int = 50,
                 pair_by: str = "flops", n_archs: int = 20_000, seed: int = 0,
                 cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True) -> None:
        self.space = space
        self.settings = {"dim": check_int("dim", dim, 2), "layers": check_int("layers", layers, 1),
                         "heads": check_int("heads", heads, 1), "epochs": check_int("epochs", epochs, 1),
                         "batch_size": check_int("batch_size", batch_size, 2), "lr": float(lr),
                         "mask_rate": float(mask_rate), "window": check_int("window", window, 1),
                         "pair_by": pair_by, "n_archs": check_int("n_archs", n_archs, 2),
                         "seed": check_int("seed", seed, 0)}
        if dim % heads:
            raise NasforgeError(f"CATE dim ({dim}) must be a multiple of heads ({heads})")
        if pair_by not in PAIR_BY:
            raise NasforgeError(f"unknown CATE pairing {pair_by!r}; allowed: {', '.join(PAIR_BY)}")
        if not 0 < mask_rate < 1 or not lr > 0:
            raise NasforgeError(f"CATE needs 0 < mask_rate < 1 and lr > 0; got {mask_rate!r}, {lr!r}")
        self.tensors = GraphTensors(space)
        self.vocab = self.tensors.vocab
        self.mask_token = len(self.vocab)
        self.cache_dir = cache_root(cache_dir)
        self.use_cache = bool(use_cache)
        self._table: dict[Hashable, np.ndarray] = {}
        self.net: Any = None
        self.pretrain_seconds = 0.0
        self.loaded_from_cache = False

    # --- data ------------------------------------------------------------------------------------
    def _pool(self) -> list[Any]:
        n = self.settings["n_archs"]
        try:
            size = len(self.space)
        except TypeError:
            size = None
        if size is not None and size <= n:
            return list(self.space)
        rng = np.random.default_rng(self.settings["seed"])
        seen: dict[Any, None] = {}
        for _ in range(20 * n):
            if len(seen) >= n:
                break
            seen.setdefault(self.space.sample(rng), None)
        return list(seen)

    def _tokens(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(token ids (B, n), attention-forbidden mask (B, n, n), operation-node flags (B, n))."""
        A, X, M = self.tensors.batch(list(archs))
        tok = X.argmax(-1).astype(np.int64)
        eye = np.eye(A.shape[1], dtype=bool)[None]
        allowed = (A > 0) | (A.transpose(0, 2, 1) > 0) | eye
        allowed &= (M[:, :, None] > 0) | eye  # padded nodes see only themselves
        allowed &= (M[:, None, :] > 0) | eye
        ops = (M > 0) & (tok >= 2)
        return tok, ~allowed, ops

    def key(self) -> str:
        payload = json.dumps({"v": VERSION, "space": self.space.spec() if hasattr(self.space, "spec") else
                              self.space.name, **self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def path(self) -> Path:
        return self.cache_dir / f"{self.space.name}-{self.key()}.pt"

    # --- training -----------------------------------------------------------------------------------
    def pretrain(self) -> CATEEncoder:
        """Load the cached model, or pre-train it (and cache it)."""
        import torch

        s = self.settings
        path = self.path()
        net = _model(len(self.vocab) + 1, self._n_pos(), s["dim"], s["layers"], s["heads"])
        if self.use_cache and path.is_file():
            blob = torch.load(path, weights_only=True)
            net.load_state_dict(blob["state"])
            net.eval()
            self.net = net
            if "archs" in blob:
                for a, v in zip(blob["archs"], blob["table"].numpy()):
                    self._table[self.space.parse(a)] = v.astype(float)
            self.loaded_from_cache = True
            self.pretrain_seconds = float(blob.get("seconds", 0.0))
            return self
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(s["seed"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s["seed"])
            net = _model(len(self.vocab) + 1, self._n_pos(), s["dim"], s["layers"], s["heads"])
        pool = self._pool()
        cost = np.array([self._cost(a) for a in pool], dtype=float)
        order = np.argsort(cost, kind="stable")
        rank = np.empty(len(pool), dtype=np.int64)
        rank[order] = np.arange(len(pool))
        tok, forbid, ops = (torch.from_numpy(t) for t in self._tokens(pool))
        rng = np.random.default_rng(s["seed"])
        opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
        net.train()
        w = s["window"]
        for _ in range(s["epochs"]):
            # partners: uniform among the `window` neighbours in cost order (never itself)
            off = rng.integers(1, w + 1, size=len(pool)) * rng.choice([-1, 1], size=len(pool))
            pr = np.clip(rank + off, 0, len(pool) - 1)
            pr = np.where(pr == rank, np.clip(rank - off, 0, len(pool) - 1), pr)
            partner = torch.from_numpy(order[pr])
            perm = torch.randperm(len(pool), generator=gen)
            for i in range(0, len(pool), s["batch_size"]):
                a = perm[i: i + s["batch_size"]]
                b = partner[a]
                ta, tb = tok[a].clone(), tok[b].clone()
                ma, mb = self._mask(ops[a], gen), self._mask(ops[b], gen)
                ta[ma], tb[mb] = self.mask_token, self.mask_token
                la, lb = net(ta, forbid[a], tb, forbid[b])
                loss = torch.nn.functional.cross_entropy(la[ma], tok[a][ma]) + \
                    torch.nn.functional.cross_entropy(lb[mb], tok[b][mb])
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        self.net = net
        self.final_loss = float(loss.detach())
        self.pretrain_seconds = time.perf_counter() - t0
        blob: dict[str, Any] = {"state": net.state_dict(), "seconds": self.pretrain_seconds}
        try:
            finite = len(self.space) <= MAX_TABLE
        except TypeError:
            finite = False
        if finite:
            every = list(self.space)
            table = self._embed(every)
            self._table = {a: v for a, v in zip(every, table)}
            blob["archs"] = [self.space.format(a) for a in every]
            blob["table"] = torch.from_numpy(table.astype(np.float32))
        if self.use_cache:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(blob, tmp)
            os.replace(tmp, path)
        return self

    def _mask(self, ops: Any, gen: Any) -> Any:
        import torch

        r = torch.rand(ops.shape, generator=gen)
        m = (r < self.settings["mask_rate"]) & ops
        # at least one masked operation per architecture that has any
        score = torch.where(ops, r, torch.full_like(r, 2.0))
        first = score.argmin(dim=1)
        has = ops.any(dim=1)
        m[torch.arange(len(first))[has], first[has]] = True
        return m

    def _n_pos(self) -> int:
        return max(self.tensors.one(a)[0].shape[0] for a in self._probe())

    def _probe(self) -> list[Any]:
        rng = np.random.default_rng(0)
        return [self.space.sample(rng) for _ in range(32)]

    def _cost(self, arch: Any) -> float:
        if self.settings["pair_by"] == "flops":
            return float(self.space.flops(arch))
        return float(self.space.param_count(arch))

    def _embed(self, archs: Sequence[Any]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(archs), 2048):
                chunk = archs[i: i + 2048]
                tok, forbid, _ = self._tokens(chunk)
                _, _, M = self.tensors.batch(list(chunk))
                h = self.net.encode(torch.from_numpy(tok), torch.from_numpy(forbid)).numpy()
                m = M[:, :, None]
                out.append((h * m).sum(1) / np.maximum(m.sum(1), 1.0))
        return np.concatenate(out).astype(float)

    # --- encodings ---------------------------------------------------------------------------------
    def encode(self, arch: Any) -> np.ndarray:
        return self.matrix([arch])[0]

    def matrix(self, archs: Sequence[Any]) -> np.ndarray:
        """The CATE encoding of each architecture, one row each."""
        if self.net is None:
            self.pretrain()
        missing = [a for a in archs if a not in self._table]
        if missing:
            for a, v in zip(missing, self._embed(missing)):
                self._table[a] = v
        return np.stack([self._table[a] for a in archs]) if len(archs) else np.zeros((0, self.settings["dim"]))


_ENCODERS: dict[str, CATEEncoder] = {}


def cate_encoder(space: SearchSpace, **settings: Any) -> CATEEncoder:
    """A pre-trained CATE encoder for ``space`` (loaded from the cache, or pre-trained and
    cached); shared within the process for identical settings."""
    try:
        enc = CATEEncoder(space, **settings)
    except TypeError as exc:
        raise NasforgeError(f"bad CATE settings: {exc}") from None
    k = f"{enc.cache_dir}:{enc.key()}:{enc.use_cache}"
    if k not in _ENCODERS:
        _ENCODERS[k] = enc.pretrain()
    return _ENCODERS[k]
