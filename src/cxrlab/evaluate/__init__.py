"""Evaluation: score predictions files against labels, compare models, calibrate, write reports.

Entry points (import them from their modules; this package stays light to import):
``cxrlab.evaluate.evaluate.evaluate_predictions`` (metrics.json + report), ``cxrlab.evaluate.compare.compare_runs``
(paired DeLong / bootstrap tests + report), ``cxrlab.evaluate.calibration.calibrate_files`` (temperature scaling).
Statistics: ``stats`` (numpy/scipy only: weighted AUROC/AP, patient bootstrap, DeLong/Obuchowski, the paired
permutation test, Holm, typed results); ``pairwise`` (compare's tests and who is best).
"""
