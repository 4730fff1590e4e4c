"""Reports from results files: `build_report(DIR)` writes report.md, a self-contained report.html,
summary.csv and figures/*.png, computed from DIR's results alone (see `robust_glo.reporting.inputs`)."""

from robust_glo.reporting.build import ReportPaths, build_report
from robust_glo.reporting.inputs import ReportInputs, load_inputs

__all__ = ["ReportInputs", "ReportPaths", "build_report", "load_inputs"]
