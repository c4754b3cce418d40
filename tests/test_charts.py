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

    # 480 - 160 (labels) - 56 (values) = 264 pixels for the largest bar.
    assert 'width="264.0"' in bars
    assert 'width="132.0"' in bars
    assert 'width="0.0"' in bars


def test_long_bar_labels_are_shortened_by_display_width_and_kept_whole_in_the_tooltip() -> None:
    bars = bar_chart_svg([("一二三四五六七八九十十一十二十三", 1), ("abcdefghijklmnopqrstuvwxyz", 2)], label="x")

    assert "<title>一二三四五六七八九十十一十二十三</title>一二三四五六七八九十十…</text>" in bars
    assert "<title>abcdefghijklmnopqrstuvwxyz</title>abcdefghijklmnopqrstuvw…</text>" in bars
