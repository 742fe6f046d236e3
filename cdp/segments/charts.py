"""PNG/SVG charts of the insight tables (matplotlib, drawn off-screen).

One function per chart, each taking an insight table from
:mod:`cdp.segments.insights` and writing one file. Only aggregates are
drawn. Chinese region names need a CJK font; when none is installed the
labels are written in English (or pinyin) instead (so a chart never shows empty boxes).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from cdp._exceptions import ConfigurationError

FORMATS = ("png", "svg")
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "SimHei", "PingFang SC")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ConfigurationError("charts need matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label_function() -> Callable[[str], str]:
    from matplotlib import font_manager

    available = {f.name for f in font_manager.fontManager.ttflist}
    font = next((f for f in CJK_FONTS if f in available), None)
    if font is not None:
        import matplotlib

        matplotlib.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
        return str

    from pypinyin import lazy_pinyin

    from cdp.segments.classify.geo_reference import CN_LABELS_EN

    def label(text: str) -> str:
        if text.isascii():
            return text
        return CN_LABELS_EN.get(text) or "".join(lazy_pinyin(text)).capitalize()

    return label


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # font fallbacks must not break a chart
        fig.savefig(path, dpi=120, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return path


def segment_sizes_chart(history: pl.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (name,), rows in history.sort("at").group_by("segment", maintain_order=True):
        ax.step(rows["at"].to_list(), rows["size"].to_list(), where="post", marker="o", label=str(name))
    ax.set_title("Segment size over time")
    ax.set_ylabel("members")
    if history.height:
        ax.legend(fontsize="small")
    fig.autofmt_xdate()
    return _save(fig, path)


def overlap_chart(matrix: pl.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    names = matrix["segment"].to_list()
    values = [[int(v) for v in row[1:]] for row in matrix.iter_rows()]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 1.0 * len(names) + 2.5))
    image = ax.imshow(values or [[0]], cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize="small")
    fig.colorbar(image, ax=ax, label="members in both")
    ax.set_title("Segment overlap")
    return _save(fig, path)


def rfm_grid_chart(grid: pl.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    values = [[int(v) for v in row[1:]] for row in grid.iter_rows()] or [[0] * 5 for _ in range(5)]
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(values, cmap="YlGn")
    ax.set_xticks(range(5), [str(f) for f in range(1, 6)])
    ax.set_yticks(range(5), [str(r) for r in range(5, 0, -1)])
    ax.set_xlabel("frequency score")
    ax.set_ylabel("recency score")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize="small")
    fig.colorbar(image, ax=ax, label="buyers")
    ax.set_title("RFM grid")
    return _save(fig, path)


def funnel_chart(funnel: pl.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    stages = funnel["stage"].to_list()
    counts = funnel["profiles"].to_list()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh(stages[::-1], counts[::-1], color="#4C72B0")
    for i, value in enumerate(counts[::-1]):
        ax.text(value, i, f" {value:,}", va="center", fontsize="small")
    ax.set_xlabel("profiles")
    ax.set_title("Lifecycle funnel")
    return _save(fig, path)


def regions_chart(regions: pl.DataFrame, path: Path, label: Callable[[str], str] | None = None) -> Path:
    plt = _pyplot()
    name = label or _label_function()
    levels = regions["level"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(len(levels) or 1, 1, figsize=(8, 2.4 * max(len(levels), 1)), squeeze=False)
    for ax, level in zip(axes[:, 0], levels or [""], strict=False):
        rows = regions.filter(pl.col("level") == level).head(12)
        ax.barh([name(str(r)) for r in rows["region"].to_list()][::-1], rows["profiles"].to_list()[::-1])
        ax.set_title(str(level), fontsize="medium")
    fig.suptitle("Regional distribution")
    return _save(fig, path)


def write_charts(
    out_dir: Path,
    *,
    fmt: str,
    history: pl.DataFrame,
    matrix: pl.DataFrame,
    grid: pl.DataFrame,
    funnel: pl.DataFrame,
    regions: pl.DataFrame,
) -> Sequence[Path]:
    """Write the five charts to ``out_dir`` as ``fmt`` (png or svg); returns their paths."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown chart format {fmt!r} (expected one of {list(FORMATS)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        segment_sizes_chart(history, out_dir / f"segment_sizes.{fmt}"),
        overlap_chart(matrix, out_dir / f"segment_overlap.{fmt}"),
        rfm_grid_chart(grid, out_dir / f"rfm_grid.{fmt}"),
        funnel_chart(funnel, out_dir / f"lifecycle_funnel.{fmt}"),
        regions_chart(regions, out_dir / f"regions.{fmt}"),
    ]
