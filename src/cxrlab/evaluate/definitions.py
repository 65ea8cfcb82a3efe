"""The exact definition of every number cxrlab reports, written into metrics.json and the reports."""

from __future__ import annotations

DEFINITIONS = {
    "auroc": "Area under the ROC curve of one class: the probability that a random positive image scores higher "
    "than a random negative one (ties count 1/2). Images with an unknown label for the class are left out. "
    "Undefined (n/a; empty in the JSON) when the class has a single label value among the scored images.",
    "auprc": "Average precision: sum over distinct thresholds (descending) of (recall_k - recall_k-1) x "
    "precision_k, without interpolation (scikit-learn's average_precision_score). Its chance level is the "
    "prevalence.",
    "macro.auroc": "Unweighted mean of the per-class AUROCs over macro.classes: the defined classes, minus "
    "macro.excluded (No Finding by default: it is the absence of the others, not a finding).",
    "micro.auroc": "AUROC of all (image, class) pairs of macro.classes pooled into one list (scikit-learn "
    "average='micro'). Dominated by frequent classes and by between-class score offsets.",
    "weighted.auroc": "Mean of per-class AUROCs over macro.classes weighted by each class's number of positive "
    "images (scikit-learn average='weighted'; 'prevalence-weighted').",
    "sensitivity_at_specificity": "Highest sensitivity on the test ROC curve among thresholds whose specificity "
    "is at least the stated value (an operating point read off test, not a threshold chosen beforehand).",
    "thresholds": "Per-class thresholds chosen on validation predictions by the stated method (youden: max "
    "sensitivity + specificity - 1; max_f1; sens:X / spec:X: reach the stated sensitivity / specificity; "
    "fixed:X) and applied unchanged to test. Predicted positive when p >= threshold.",
    "f1": "2 TP / (2 TP + FP + FN) at the threshold. macro_f1: unweighted mean over macro.classes.",
    "brier": "Mean squared difference between probability and label (multi-class: summed over classes).",
    "ece": "Expected calibration error with 15 equal-width probability bins: sum_b (n_b / n) |observed frequency_b "
    "- mean probability_b|. Multi-class: top-label ECE (confidence of the arg-max class vs. its accuracy).",
    "temperature": "Temperature scaling: logits divided by T fitted on validation by minimising log-loss (one T "
    "per class for multi-label, one T for multi-class), then applied to test.",
    "ci": "95% percentile bootstrap intervals: each replicate draws as many patients as were scored, with "
    "replacement, and keeps all their images (images of one patient are not independent), stratified by each "
    "patient's rarest positive class so every averaged class keeps positives. A replicate where a metric is "
    "undefined is counted (n_undefined_replicates) and left out of its interval; a macro average keeps a fixed "
    "class set, so a replicate with one undefined class is undefined for the macro. The seed and "
    "number of replicates are in bootstrap.",
    "labelwise_accuracy": "Seed paper's 'accuracy': fraction of all (image, class) cells where (p >= 0.5) equals "
    "the label, over every class including No Finding. With rare findings a model predicting 'absent' "
    "everywhere scores above 0.9: it is shown only to contrast with the metrics above.",
    "flattened_auroc": "Seed paper's 'AUC': one AUROC over all (image, class) pairs of every class including No "
    "Finding (a micro average). It rewards ranking classes against each other, not detecting a finding.",
    "multiclass": "accuracy: fraction of images whose arg-max class is the true class; precision/recall/F1 per "
    "class from the confusion matrix; macro F1: unweighted mean over classes present; weighted F1: weighted by "
    "support; balanced accuracy: mean recall; Cohen's kappa: (accuracy - chance agreement) / (1 - chance "
    "agreement); AUROC (one-vs-rest) per class and its unweighted mean.",
    "delong": "Paired DeLong test (DeLong et al. 1988, fast algorithm of Sun & Xu 2014) of the AUROC difference "
    "of two models on the same images, two-sided. When a patient has several scored images (\"delong, "
    "patient-clustered (Obuchowski)\"), the variance is Obuchowski's (1997) clustered form: placement values are "
    "summed per patient, with the small-sample factors I10/(I10-1) over patients holding a positive image, "
    "I01/(I01-1) over those holding a negative one and I/(I-1) for the cross term; with one image per patient it "
    "is exactly DeLong. Used only for classes with at least the minimum number of positive and negative patients "
    "(25, from the calibration simulation in docs/evaluation.md).",
    "permutation": "Paired permutation test (Bandos, Rockette & Gur 2005) of the AUROC difference, for classes "
    "below the minimum number of patients: each model's scores are rank-transformed, the two models' values are "
    "swapped on all images of randomly chosen patients, and p = (1 + #{|d*| >= |d|}) / (B + 1) over B random "
    "swaps (seeded): a Monte Carlo p-value never below 1/(B+1), valid at any number of patients.",
    "bootstrap_difference": "Paired bootstrap test of a difference (macro AUROC, macro F1): both models are scored "
    "on the same patient resamples; the p-value inverts the percentile interval, p = 2 min(1 + #{d* <= 0}, "
    "1 + #{d* >= 0}) / (B + 1), a Monte Carlo value never reported below 2/(B+1).",
    "holm": "Holm's step-down adjustment over all tests of one comparison (every model pair x every class and "
    "the macro average), controlling the family-wise error rate.",
}

REFERENCES = [
    {"name": "Wang et al. 2017 (ChestX-ray8), ResNet-50", "macro_auroc": 0.745,
     "split": "the paper's own patient split; 8 findings averaged in the original, 14 in the 2017 update"},
    {"name": "Rajpurkar et al. 2017 (CheXNet), DenseNet-121", "macro_auroc": 0.841,
     "split": "CheXNet's own random patient split (not the official test list)"},
    {"name": "DenseNet-121 on the official NIH test list (e.g. torchxrayvision, several reproductions)",
     "macro_auroc": 0.81, "split": "official train_val_list / test_list"},
]
REFERENCE_NOTE = ("Reference anchors from other papers, other splits and other label sets: not comparable to this "
                  "run's numbers except as an order of magnitude.")
