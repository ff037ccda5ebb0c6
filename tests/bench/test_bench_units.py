import pytest
from bench.units import GIB, MIB, format_size, megabytes_per_second, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GiB", 2 * GIB),
        ("256MiB", 256 * MIB),
        ("256 mib", 256 * MIB),
        ("8M", 8_000_000),
        ("1.5GiB", 3 * GIB // 2),
        ("1048576", MIB),
        ("4k", 4000),
    ],
)
def test_parse_size_accepts_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1MiB", "2 parsecs", "1.5", "MiB", "0.1B"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [(2 * GIB, "2GiB"), (64 * MIB, "64MiB"), (3 * GIB // 2, "1.5GiB"), (1000, "1000B")],
)
def test_format_size_reads_back(size: int, text: str) -> None:
    assert format_size(size) == text


def test_megabytes_per_second_is_decimal() -> None:
    assert megabytes_per_second(2_000_000_000, 4.0) == 500.0
    assert megabytes_per_second(1, 0.0) == 0.0
