"""Evaluation: score predictions files against labels, compare models, calibrate, write reports.

Entry points (import them from their modules; this package stays light to import):
``cxrlab.evaluate.evaluate.evaluate_predictions`` (metrics.json + report), ``cxrlab.evaluate.compare.compare_runs``
(paired DeLong / bootstrap tests + report), ``cxrlab.evaluate.calibration.calibrate_files`` (temperature scaling).
Statistics: ``ranking`` (vectorised weighted AUROC/AP), ``bootstrap`` (patient-level weights), ``delong``.
"""
