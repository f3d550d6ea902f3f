"""Graph neural predictors on a space's graph view (torch): GIN and GCN.

Each architecture is its ``space.graph(arch)`` DAG (operations on nodes); node features are the
one-hot of the node's label over ``("input", "output", *space.ops)``. Graphs of one batch are
padded to the largest node count. GIN (Xu et al., 2019) sums each node's in- and out-neighbours
(edges taken both ways) with a learnt self weight ``1 + eps``, then a 2-layer MLP, three layers,
sum pooling; GCN (the neural predictor of Wen et al. 2020 / NASLib's ``gcn``) uses the
symmetric-normalised adjacency with self loops and mean pooling. Both are trained with Adam on
the standardised targets (mean squared error), full batch for small sets, in float32 on one
thread of the caller's torch settings; weights come from the predictor's seed.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import Predictor, check_int
from nasforge.spaces.base import SearchSpace


def graph_vocabulary(space: SearchSpace) -> tuple[str, ...]:
    ops = getattr(space, "ops", None)
    if not ops:
        raise NasforgeError(f"space {space.name!r} lists no 'ops'; graph predictors need the operation labels of "
                            "its graph view")
    return ("input", "output", *[o for o in ops if o not in ("input", "output")])


class GraphTensors:
    """Padded adjacency and node-feature arrays for architectures of one space (cached)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.vocab = graph_vocabulary(space)
        self.index = {o: i for i, o in enumerate(self.vocab)}
        self._cache: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}

    def one(self, arch: Any) -> tuple[np.ndarray, np.ndarray]:
        got = self._cache.get(arch)
        if got is None:
            try:
                adj, labels = self.space.graph(arch)
            except NotImplementedError:
                raise NasforgeError(f"space {self.space.name!r} has no graph view; graph predictors need "
                                    "space.graph(arch)") from None
            adj = (np.asarray(adj) != 0).astype(np.float32)
            labels = list(labels)
            labels[0], labels[-1] = "input", "output"
            x = np.zeros((len(labels), len(self.vocab)), dtype=np.float32)
            for i, lab in enumerate(labels):
                if lab not in self.index:
                    raise NasforgeError(f"space {self.space.name!r}: graph label {lab!r} is not one of its ops "
                                        f"({', '.join(self.vocab[2:])})")
                x[i, self.index[lab]] = 1.0
            got = self._cache[arch] = (adj, x)
        return got

    def batch(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(adjacency (B, n, n), features (B, n, V), node mask (B, n))."""
        items = [self.one(a) for a in archs]
        n = max(a.shape[0] for a, _ in items)
        A = np.zeros((len(items), n, n), dtype=np.float32)
        X = np.zeros((len(items), n, len(self.vocab)), dtype=np.float32)
        M = np.zeros((len(items), n), dtype=np.float32)
        for b, (adj, x) in enumerate(items):
            k = adj.shape[0]
            A[b, :k, :k], X[b, :k], M[b, :k] = adj, x, 1.0
        return A, X, M


def _build_net(kind: str, n_in: int, hidden: int, layers: int) -> Any:
    import torch
    from torch import nn

    class GraphNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kind = kind
            self.embed = nn.Linear(n_in, hidden)
            if kind == "gin":
                self.eps = nn.Parameter(torch.zeros(layers))
                self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
                                          for _ in range(layers))
            else:
                self.lins = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
            self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, A: Any, X: Any, M: Any) -> Any:
            h = self.embed(X) * M.unsqueeze(-1)
            sym = A + A.transpose(1, 2)
            if self.kind == "gin":
                for i, mlp in enumerate(self.mlps):
                    h = torch.relu(mlp((1 + self.eps[i]) * h + sym @ h)) * M.unsqueeze(-1)
                pooled = h.sum(dim=1)
            else:
                eye = torch.diag_embed(M)
                Ah = (sym > 0).float() + eye
                d = Ah.sum(-1).clamp(min=1.0).rsqrt()
                An = d.unsqueeze(-1) * Ah * d.unsqueeze(-2)
                for lin in self.lins:
                    h = torch.relu(An @ lin(h)) * M.unsqueeze(-1)
                pooled = h.sum(dim=1) / M.sum(dim=1, keepdim=True).clamp(min=1.0)
            return self.head(pooled).squeeze(-1)

    return GraphNet()


class GraphPredictor(Predictor):
    """A GIN (``kind="gin"``) or GCN (``kind="gcn"``) regressor on the graph view."""

    name = "gin"

    def __init__(self, space: SearchSpace, kind: str = "gin", hidden: int = 64, layers: int = 3, epochs: int = 300,
                 lr: float = 3e-3, weight_decay: float = 1e-4, batch_size: int = 128, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if kind not in ("gin", "gcn"):
            raise NasforgeError(f"unknown graph predictor kind {kind!r}; allowed: gin, gcn")
        self.kind = kind
        self.name = kind
        self.hidden = check_int("hidden", hidden, 1)
        self.layers = check_int("layers", layers, 1)
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        if not lr > 0 or weight_decay < 0:
            raise NasforgeError(f"lr must be > 0 and weight_decay >= 0; got {lr!r}, {weight_decay!r}")
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.tensors = GraphTensors(space)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        import torch

        gen = torch.Generator().manual_seed(self.sub_seed())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
            self.net = _build_net(self.kind, len(self.tensors.vocab), self.hidden, self.layers)
        A, X, M = (torch.from_numpy(t) for t in self.tensors.batch(archs))
        yt = torch.as_tensor(z, dtype=torch.float32)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        n = len(archs)
        self.net.train()
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n, self.batch_size):
                idx = perm[s: s + self.batch_size]
                opt.zero_grad()
                loss = torch.mean((self.net(A[idx], X[idx], M[idx]) - yt[idx]) ** 2)
                loss.backward()
                opt.step()
            sched.step()
        self.net.eval()

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, None]:
        import torch

        out = []
        with torch.no_grad():
            for s in range(0, len(archs), 1024):
                A, X, M = (torch.from_numpy(t) for t in self.tensors.batch(archs[s: s + 1024]))
                out.append(self.net(A, X, M).numpy().astype(float))
        return np.concatenate(out), None
