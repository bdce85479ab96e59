"""bench/search_latency.py's pure helpers: the sizes it accepts, its percentiles, and how
it interleaves and keeps each query's fastest run."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # the bench imports its sibling scripts
    try:
        spec = importlib.util.spec_from_file_location("search_latency", BENCH / "search_latency.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_a_size_beyond_the_embedded_vectors_is_refused_naming_how_many_exist(
    bench: ModuleType,
) -> None:
    # GIVEN 250,000 chunks embedded so far
    # WHEN 10k and 300k are asked for
    # THEN the run is refused, naming the size too large and the count embedded
    with pytest.raises(ValueError, match=r"--sizes 300,000: only 250,000 chunks"):
        bench.parse_sizes("10000,300000", 250_000)
    # and sizes within it are taken in the order given
    assert bench.parse_sizes("100000, 10000", 250_000) == [100_000, 10_000]


@pytest.mark.parametrize("text", ["10k", "0", "", "-5"])
def test_sizes_that_are_not_positive_numbers_are_refused(bench: ModuleType, text: str) -> None:
    # GIVEN sizes that are not positive numbers of chunks; WHEN parsed; THEN refused
    with pytest.raises(ValueError, match="--sizes must be"):
        bench.parse_sizes(text, 1_000_000)


def test_percentiles_are_the_median_and_the_nearest_rank_95th(bench: ModuleType) -> None:
    # GIVEN twenty samples 1..20 in any order
    samples = [float(v) for v in (7, 3, 20, 1, 15, 2, 9, 4, 5, 6, 8, 10, 11, 12, 13, 14, 16,
                                  17, 18, 19)]  # fmt: skip
    # WHEN their percentiles are taken; THEN p50 is the median, p95 the 19th of 20
    assert bench.percentiles(samples) == (10.5, 19.0)
    assert bench.percentiles([4.0]) == (4.0, 4.0)
    with pytest.raises(ValueError):
        bench.percentiles([])


def test_modes_take_turns_per_query_and_each_query_keeps_its_fastest_round(
    bench: ModuleType,
) -> None:
    # GIVEN two modes whose runs take known times on a fake clock: mode "a" is slow in the
    # first round for query 1 and fast in the second; "b" the other way round
    clock = [0.0]
    durations = {("a", 0): [1.0, 1.0], ("a", 1): [5.0, 2.0], ("b", 0): [3.0, 3.0],
                 ("b", 1): [1.0, 4.0]}  # fmt: skip
    calls: list[tuple[str, int]] = []
    rounds = {key: 0 for key in durations}

    def run(name: str) -> Callable[[int], None]:
        def send(n: int) -> None:
            calls.append((name, n))
            if len(calls) > 2:  # the warm-up (query 0, each mode once) is not timed
                clock[0] += durations[name, n][rounds[name, n]]
                rounds[name, n] += 1

        return send

    # WHEN timed over 2 queries, 2 rounds, one query of warm-up
    best = bench.time_interleaved(
        {"a": run("a"), "b": run("b")}, 2, 2, warm=1, clock=lambda: clock[0]
    )
    # THEN each query keeps its fastest round per mode
    assert best == {"a": [1.0, 2.0], "b": [3.0, 1.0]}
    # and who goes first rotates from query to query and from round to round
    timed = calls[2:]
    assert timed == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("b", 0), ("a", 0), ("a", 1),
                     ("b", 1)]  # fmt: skip
