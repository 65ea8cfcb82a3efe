"""Studies: declarative comparisons of arms x seeds (sweeps, ensembles) with one report.

``load_study`` (spec), ``make_plan`` (plan), ``run_study`` / ``study_status`` (runner), ``build_report`` (report).
"""
