"""docs/benchmarks.md compares with the original system only when the same run measured it (issue 22
item 5: `make bench PEER_URL=…`); never with a figure taken on another machine."""

import json
from pathlib import Path

from bench import report

HTTP_LINES = Path(__file__).resolve().parents[1] / "bench" / "results" / "http.jsonl"


def _newest_http_run(peer=None):
    result = json.loads(HTTP_LINES.read_text().splitlines()[-1])
    result.pop("peer_rps", None)  # what lines written before PEER_URL carried: a figure from elsewhere
    result["ratios"] = {k: v for k, v in result["ratios"].items() if k.endswith("_vs_ceiling")}
    if peer:
        result["peer"] = peer
    return {"name": "http", "result": result}


def test_without_a_measured_peer_no_ratio_to_the_original_is_given():
    run = _newest_http_run()
    text = report._http(run) + "\n".join(str(row) for row in report._targets({"http": run}))
    assert "the original system was not measured" in text.lower()
    assert "× the original" not in text and "the peer" not in text


def test_a_peer_measured_in_the_same_run_is_compared_by_its_medians():
    peer = {"url": "http://127.0.0.1:8001", "rounds": 3,
            "list": {"ours_rps": [90.0, 92.0, 91.0], "peer_rps": [50.0, 56.0, 52.0], "ratio": 1.75},
            "analytics": {"ours_rps": [60.0, 61.0, 62.0], "peer_rps": [6.0, 6.5, 6.4], "ratio": 9.53}}
    text = report._http(_newest_http_run(peer))
    assert "**1.75×** the original system (91.0 / 52.0 req/s, alternating, same run)" in text
    assert "http://127.0.0.1:8001" in text
