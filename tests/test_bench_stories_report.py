"""docs/benchmarks.md's stories section (bench/bench_stories.py's result line, bench/report.py)."""

from bench import report

CASE = {"median_ms": 12.5, "p95_ms": 20.0, "max_ms": 22.0, "rows": 20}
RESULT = {"rows": 1_000_000, "database": "postgresql", "stories": 144_000, "flagged": 24_000, "links": 3_000_000,
          "stitch_newest": {"threats": 1000, "median_ms": 4.1, "p95_ms": 7.9, "max_ms": 30.0},
          "stitch_late": {"threats": 100, "median_ms": 6.0, "p95_ms": 9.5, "max_ms": 12.0},
          "cases": {"first page (20)": CASE}}


def test_the_section_states_stitching_cost_and_each_case():
    text = report._stories({"name": "stories", "result": RESULT, "exit": 0})
    assert text.startswith("## Attack stories at scale")
    assert "1,000,000 threats on postgresql, 144,000 stories" in text and "median 4.1 ms, p95 7.9 ms" in text
    assert "| first page (20) | 12.5 ms | 20.0 ms | 22.0 ms | 20 |" in text


def test_a_run_without_a_result_says_so():
    assert "No result in this run (exit 1)" in report._stories({"name": "stories", "result": None, "exit": 1})
