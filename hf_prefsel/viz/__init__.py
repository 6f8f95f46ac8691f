"""Every picture the library draws, in one package: trees and taxonomies (`trees`: self-contained HTML with inline
SVG, and PNG) and the charts and treemaps of run results (`charts`: pandas frames for Gradio's plots, HTML)."""

from .charts import Chart, TreeNode, bar_chart, coverage_chart, empty_html, histogram_chart, short_label, squarify, treemap_html
from .trees import knowledge_tree_html, knowledge_tree_png, pyplot, taxonomy_html, taxonomy_png

__all__ = [
    "Chart", "TreeNode", "bar_chart", "coverage_chart", "empty_html", "histogram_chart", "knowledge_tree_html",
    "knowledge_tree_png", "pyplot", "short_label", "squarify", "taxonomy_html", "taxonomy_png", "treemap_html",
]
