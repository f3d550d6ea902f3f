"""Analysis: anytime curves, rank correlations, plots and reports."""

from nasforge.analysis.anytime import anytime_table, incumbent_curve, plot_anytime

__all__ = ["anytime_table", "incumbent_curve", "plot_anytime"]
