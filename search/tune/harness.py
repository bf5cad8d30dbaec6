"""The one seam between a search and what measures it (search.bench): a harness says what a benchmark
puts in the search's place, and run_search hands it to the Tuner unchanged. A user's search has none.

    trainable   replays recorded learning curves instead of training (search/bench/replay.py: the
                simulator's parity test, the driver at scale)
    search_alg  a Tune search algorithm instead of the strategy's (search.bench compare's `stock`,
                Ray's own OptunaSearch)
    stop        a Tune stopper for the whole search (compare's budget of trial steps)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Harness:
    trainable: Any = None
    search_alg: Any = None
    stop: Any = None


NONE = Harness()
