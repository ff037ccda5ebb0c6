import pytest
from bench.profile import format_costs, parse_collapsed, top_costs

RAW = [
    'process 1:"server";main (app.py:1);write (io.py:7) 6',
    'process 1:"server";main (app.py:1);parse (mp.py:3) 3',
    'process 1:"server";main (app.py:1) 1',
    "garbage without a count",
    "",
]


def test_parse_collapsed_counts_each_stack() -> None:
    stacks = parse_collapsed(RAW)
    assert sum(stacks.values()) == 10
    assert stacks[('process 1:"server"', "main (app.py:1)", "write (io.py:7)")] == 6


def test_top_costs_rank_by_own_samples_with_inclusive_share() -> None:
    costs = top_costs(parse_collapsed(RAW))
    assert [cost.frame for cost in costs] == [
        "write (io.py)",
        "parse (mp.py)",
        "main (app.py)",
    ]
    assert costs[0].self_share == pytest.approx(0.6)
    assert costs[2].self_share == pytest.approx(0.1)
    assert costs[2].total_share == pytest.approx(1.0)
    assert "60.0%" in format_costs(costs, 10).splitlines()[2]


def test_lines_of_one_function_add_up() -> None:
    stacks = parse_collapsed(
        ["main (app.py:1);write (io.py:7) 2", "main (app.py:1);write (io.py:9) 3"]
    )
    [cost] = top_costs(stacks)
    assert (cost.frame, cost.self_share) == ("write (io.py)", 1.0)


def test_top_costs_of_nothing_is_empty() -> None:
    assert top_costs(parse_collapsed([])) == []
