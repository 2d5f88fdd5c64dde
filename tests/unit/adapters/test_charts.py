"""The SVG chart: well-formed, accessible, escaped, bars in proportion, no inline style."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from conversa.adapters.charts import Series, axis, bar_chart, hourly_activity_chart
from conversa.app.overview import HourTotals

SVG = "{http://www.w3.org/2000/svg}"


def test_axes_have_round_steps_and_at_most_five_ticks() -> None:
    cases = {0: (1, 1), 1: (1, 1), 3: (3, 1), 4: (4, 1), 5: (6, 2), 11: (15, 5), 240: (300, 100)}
    for largest, expected in cases.items():
        assert axis(largest) == expected, largest
    for largest in (7, 99, 1234, 915_856):
        top, step = axis(largest)
        assert top >= largest and top // step <= 5 and top % step == 0


def test_bars_are_in_proportion_with_labels_title_and_description() -> None:
    svg = bar_chart(
        chart_id="c1",
        title="Title <b>",
        description="Desc & more",
        labels=["00:00", "01:00"],
        series=[Series("sent", [10, 5], "#111111"), Series("failed", [0, 2], "#222222")],
        label_every=1,
    )
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "Title <b>"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "Desc & more"  # type: ignore[union-attr]
    assert "style" not in svg and "<script" not in svg
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    heights = {r.find(f"{SVG}title").text: float(r.get("height", "0")) for r in bars}  # type: ignore[union-attr]
    assert heights["00:00 sent: 10"] == pytest.approx(2 * heights["01:00 sent: 5"])
    assert heights["00:00 failed: 0"] == 0
    assert heights["01:00 failed: 2"] == pytest.approx(heights["01:00 sent: 5"] * 2 / 5)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"00:00", "01:00", "sent", "failed", "0", "10"} <= set(texts)


def test_text_is_escaped() -> None:
    svg = bar_chart(
        chart_id='x"><script>',
        title="</title><script>alert(1)</script>",
        description="d",
        labels=["<img src=x onerror=alert(1)>"],
        series=[Series("s", [1], "red")],
    )
    assert "<script" not in svg and "<img" not in svg
    ET.fromstring(svg)


def test_a_series_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="1 values for 2"):
        bar_chart(
            chart_id="c",
            title="t",
            description="d",
            labels=["a", "b"],
            series=[Series("s", [1], "red")],
        )


def test_the_hourly_chart_describes_the_window() -> None:
    start = datetime(2026, 12, 6, 0, tzinfo=UTC)
    hours = [
        HourTotals(start=start + timedelta(hours=i), sent=i, delivered=i // 2, failed=i % 3)
        for i in range(24)
    ]
    svg = hourly_activity_chart(hours)
    root = ET.fromstring(svg)
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "2026-12-06 00:00 to 2026-12-06 23:59 UTC" in desc
    assert f"{sum(range(24))} sent" in desc and "busiest hour, 23:00, sent 23" in desc
    assert len([r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]) == 72
