"""Explanations: where the model looked (location attention), which regions it related
(relation attention) and which frames counted (frame weights), as PNGs and HTML reports."""

from rdam.explain.people_report import explain_people, write_people_report
from rdam.explain.render import (
    Relation,
    alpha_figure,
    draw_box,
    encode_png,
    overlay_heatmap,
    relation_figure,
    timeline_figure,
    top_relations,
    upsample_map,
)
from rdam.explain.report import (
    ReportEntry,
    explain_analyses,
    explain_videos,
    write_index,
    write_report,
)

__all__ = [
    "Relation",
    "ReportEntry",
    "alpha_figure",
    "draw_box",
    "encode_png",
    "explain_analyses",
    "explain_people",
    "explain_videos",
    "overlay_heatmap",
    "relation_figure",
    "timeline_figure",
    "top_relations",
    "upsample_map",
    "write_index",
    "write_people_report",
    "write_report",
]
