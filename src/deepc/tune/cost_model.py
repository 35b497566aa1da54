"""A learned cost model: gradient-boosted trees (LightGBM) over loop and knob features,
predicting a candidate's time relative to its workload's default; refit as measurements
arrive, seeded from earlier logs of the same target. Without LightGBM (the optional extra
`deepc[tune]`) or with few samples, it predicts nothing and the search explores at random."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_SAMPLES = 12  # below this a fit ranks no better than chance
REFIT_EVERY = 8


class CostModel:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.x: list[list[float]] = []
        self.y: list[float] = []
        self._model: Any = None
        self._fitted_at = 0

    def add(self, features: list[float], cost: float, default_cost: float) -> None:
        """A measured candidate: its features and its time over its default's."""
        if features and cost > 0 and default_cost > 0:
            self.x.append(list(features))
            self.y.append(math.log(cost / default_cost))

    def _refit(self) -> None:
        stale = self._model is None or len(self.y) - self._fitted_at >= REFIT_EVERY
        if len(self.y) < MIN_SAMPLES or not stale:
            return
        try:
            import lightgbm
        except ImportError:
            return
        width = max(len(r) for r in self.x)
        rows = [r + [0.0] * (width - len(r)) for r in self.x]
        params = {"objective": "regression", "learning_rate": 0.1, "num_leaves": 15,
                  "min_data_in_leaf": 3, "min_data_in_bin": 1, "seed": self.seed,
                  "verbose": -1, "num_threads": 1}
        data = lightgbm.Dataset(np.asarray(rows), np.asarray(self.y), params=params)
        self._model = lightgbm.train(params, data, num_boost_round=80)
        self._fitted_at, self._width = len(self.y), width

    @property
    def trained(self) -> bool:
        self._refit()
        return self._model is not None

    def predict(self, rows: list[list[float]]) -> list[float] | None:
        """Predicted log(cost / default cost) per candidate, or None while untrained."""
        if not self.trained:
            return None
        padded = [(r + [0.0] * self._width)[:self._width] for r in rows]
        return [float(v) for v in self._model.predict(np.asarray(padded))]
