"""The statistics core of evaluation: numpy/scipy only, no file I/O, no pandas, no rendering, typed results.

Modules: ``ranking`` (weighted AUROC/AP for many patient weightings at once), ``bootstrap`` (patient-level
weights, stratified so a class keeps its positives; percentile and BCa intervals; the bootstrap test of a
paired difference), ``delong`` (DeLong 1988 and Obuchowski's 1997 patient-clustered covariance),
``permutation`` (Bandos, Rockette & Gur 2005 paired permutation test, patient-level swaps), ``choose`` (which
AUROC test a class gets, by its number of positive and negative patients), ``multiple`` (Holm),
``results`` (the frozen dataclasses every function returns), ``evaluation`` and ``metrics_file`` (the typed
results of one evaluation and a whole ``metrics.json``; ``fields`` reads them back field by field), ``seeds``
(the two-level patients x seeds bootstrap of seed means), ``simulate`` (null data for the calibration checks).
It imports nothing from ``cxrlab`` but the base layer (``cxrlab.auroc``, ``cxrlab.errors``); ``.importlinter``
enforces it.
"""
