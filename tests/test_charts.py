"""The server-side SVG pictures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wxplatform.core.charts import bar_chart_svg, step_chart_svg

END = datetime(2026, 5, 31, 12, tzinfo=UTC)
START = END - timedelta(days=30)


def test_step_chart_starts_from_the_value_before_the_window_and_ends_at_the_latest() -> None:
    svg = step_chart_svg(
        [(START - timedelta(days=3), 4), (END - timedelta(days=1), 12)], start=START, end=END, label="c"
    )

    assert svg.startswith("<svg ")
    assert svg.count("<circle ") == 1
    assert 'class="wxp-chart-latest">12</text>' in svg
    # The y axis runs to a round number above the largest value.
    assert 'fill="#666">20</text>' in svg


def test_step_chart_without_history_says_so() -> None:
    svg = step_chart_svg([], start=START, end=END, label="c")

    assert 'class="wxp-chart-empty"' in svg
    assert "<path" not in svg


def test_step_chart_ignores_points_after_the_window() -> None:
    svg = step_chart_svg([(END + timedelta(hours=1), 99)], start=START, end=END, label="c")

    assert ">99<" not in svg
    assert 'class="wxp-chart-empty"' in svg


def test_chart_labels_are_escaped() -> None:
    svg = step_chart_svg([], start=START, end=END, label="<script>x</script>")
    bars = bar_chart_svg([("<b>name</b>", 3)], label='"quoted"')

    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "<b>" not in bars
    assert "&lt;b&gt;name&lt;/b&gt;" in bars
    assert 'aria-label="&quot;quoted&quot;"' in bars


def test_bars_are_proportional_to_the_largest_value() -> None:
    bars = bar_chart_svg([("a", 10), ("b", 5), ("c", 0)], label="x", width=480)

    # 480 - 60 (the narrowest label column) - 56 (values) = 364 pixels for the largest bar.
    assert 'width="364.0"' in bars
    assert 'width="182.0"' in bars
    assert 'width="0.0"' in bars


def test_long_bar_labels_are_drawn_whole_in_a_column_as_wide_as_the_longest() -> None:
    chinese, latin = "一二三四五六七八九十十一十二十三", "abcdefghijklmnopqrstuvwxyz"
    bars = bar_chart_svg([(chinese, 1), (latin, 2)], label="x")

    assert f">{chinese}</text>" in bars
    assert f">{latin}</text>" in bars
    assert "…" not in bars
    # The Latin alphabet is the widest (26 x 7.5 px = 195 px, an upper bound): labels end 6 px before the bars,
    # which start after the column at x = 207.
    assert '<text x="201" ' in bars
    assert '<rect x="207" ' in bars
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="wxp-bars" width="480" ' in bars


def test_a_chart_of_very_long_labels_grows_instead_of_squeezing_its_bars() -> None:
    bars = bar_chart_svg([("长" * 30, 1)], label="x", width=480)

    # 360 px of label + 12 px of gaps, 200 px of bars at the least, 56 px for the value.
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="wxp-bars" width="628" ' in bars
