"""Drive a running ``ragline dev`` with the example questions, to watch the cost ledger.

Posts every question of examples/questions.json for a number of rounds, across the
routing profiles, rates some answers, and prints the latency it saw. Only the local
stack's loopback API is called (read from <data dir>/endpoints.json); the loop is
bounded by --rounds.

    ragline dev &                      # any model: extractive, or an OpenAI-compatible server
    python bench/traffic.py --rounds 5 --pause 0.5
    ragline stats --plot stats.png
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def post(api: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        api.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".ragline"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between requests")
    parser.add_argument("--profiles", default="simple,simple,simple,reasoning,critical")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    api = json.loads((args.data_dir / "endpoints.json").read_text())["api"]
    questions = [q["question"] for q in json.loads((ROOT / "examples/questions.json").read_text())]
    profiles = args.profiles.split(",")
    rng = random.Random(args.seed)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for _ in range(max(1, min(args.rounds, 1000))):
        for question in questions:
            status, body = post(
                api, "/query", {"question": question, "profile": rng.choice(profiles)}
            )
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(body["latency_ms"]["total"])
                if rng.random() < 0.3:
                    rating = "down" if body["abstained"] else "up"
                    post(api, "/feedback", {"request_id": body["request_id"], "rating": rating})
            time.sleep(args.pause)
    if latencies:
        quantiles = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies
        print(
            f"{len(latencies)} answers, statuses {statuses}, "
            f"p50 {statistics.median(latencies):.1f} ms, p95 {quantiles[-1]:.1f} ms"
        )
    else:
        print(f"no answers, statuses {statuses}")
    return 0 if latencies else 1


if __name__ == "__main__":
    sys.exit(main())
