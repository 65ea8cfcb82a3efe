"""The sections of the training configuration (``data``, ``model``, ``loss``, ``sampler``, ``augment``, ``optim``,
``schedule``, ``train``): one dataclass each, a docstring per field, validated in ``__post_init__``.

``cxrlab.config`` assembles them into ``Config`` and loads, overrides and saves it; import them from there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cxrlab.errors import CxrlabError

POLICIES = ("none", "paper", "medical", "lab_a", "lab_b")
SAMPLERS = ("none", "balanced", "rarity")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "plateau", "step")
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "off", "bf16", "fp16")
FREEZE_MODES = ("none", "backbone")
TRACKERS = ("none", "tensorboard", "mlflow")


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise CxrlabError(f"config {key}: {msg}")


def _range(value: float | None, lo: float, hi: float, key: str) -> None:  # NaN, inf, absurd sizes: refused
    _check(value is None or lo <= value <= hi, key, f"{value} is outside {lo:g}..{hi:g}")


def _one_of(value: str, valid: tuple[str, ...], key: str) -> None:
    _check(value in valid, key, f"{value!r} is not one of {', '.join(valid)}")


@dataclass
class DataConfig:
    index: str = "data/index/index.csv"
    """Index folder or ``index.csv`` (``cxrlab data index``)."""
    split: str = "data/split/split.csv"
    """``split.csv`` (``cxrlab data split``): patient-level train/val/test."""
    cache: str | None = None
    """Cache folder (``cxrlab data cache``); when null, images are decoded from disk every epoch (slow)."""
    image_size: int = 224
    """Side of the square image fed to the model."""
    cache_size: int | None = None
    """Side images are resized to before augmentation: null = the cache's own size (256 without a cache); a
    value that differs from ``data.cache``'s size is an error (rebuild the cache, or set the cache's size)."""
    fold: int | None = None
    """For a k-fold split: which fold is validation (the others train); null uses the ``split`` column."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the main process)."""
    policy: str = "letterbox"
    """Resize policy when reading from disk without a cache: letterbox or center_crop."""
    require_positives: bool = True
    """Stop when a class has no positive image in train (its AUROC and loss weight would be meaningless)."""
    allow_patient_leak: bool = False
    """Train on a split with a patient in two parts (train and test, ...) with a warning; false: an error."""
    source_weights: dict[str, float] | str | None = None
    """Merged data (``cxrlab data merge``): each source's share of the training draws, ``balanced`` or a mapping
    ``{source: weight}``; null draws images as they come. Validation also reports ``val_metric_<source>``."""

    def __post_init__(self) -> None:
        _range(self.image_size, 16, 2048, "data.image_size")
        _range(self.cache_size, 16, 4096, "data.cache_size")
        _range(self.num_workers, 0, 256, "data.num_workers")
        _range(self.fold, 0, 1000, "data.fold")
        _one_of(self.policy, ("letterbox", "center_crop"), "data.policy")
        if isinstance(self.source_weights, str):
            _one_of(self.source_weights, ("balanced",), "data.source_weights")
        elif isinstance(self.source_weights, dict):
            for k, v in self.source_weights.items():
                _check(v > 0, f"data.source_weights.{k}", "must be > 0")


@dataclass
class ModelConfig:
    name: str = "cnn_gap"
    """Model name for ``create_model`` (``cxrlab models list``): bare, ``timm:NAME``, ``tv:NAME``, ``xrv:NAME``."""
    pretrained: bool = False
    """Start from pretrained weights (hub when online, or ``weights`` when offline)."""
    weights: str | None = None
    """Local weights file or folder (safetensors or a state dict), for offline pretrained starts."""
    weights_sha256: str | None = None
    """Pin the sha256 of ``weights``; a mismatch is an error."""
    drop_rate: float | None = None
    """Head dropout; null keeps the model's default."""
    in_chans: int = 1
    """Input channels: 1 (gray, our models) or 3 (ImageNet backbones; the gray channel is repeated)."""
    freeze: str = "none"
    """none (train everything) or backbone (train the head only: a linear probe, see ``unfreeze_epoch``)."""
    unfreeze_epoch: int | None = None
    """With freeze=backbone: train the whole model from this epoch on (gradual unfreezing); null = never."""

    def __post_init__(self) -> None:
        _check(bool(self.name), "model.name", "must not be empty")
        _one_of(self.freeze, FREEZE_MODES, "model.freeze")
        _check(self.unfreeze_epoch is None or (self.freeze == "backbone" and self.unfreeze_epoch >= 2),
               "model.unfreeze_epoch", "needs model.freeze=backbone and an epoch >= 2 (or null)")
        _check(self.in_chans in (1, 3), "model.in_chans", f"{self.in_chans} is not 1 or 3")
        _check(self.drop_rate is None or 0 <= self.drop_rate < 1, "model.drop_rate", "must be in [0, 1)")


@dataclass
class LossConfig:
    name: str = "auto"
    """Loss for ``cxrlab.losses.build_loss``: bce, weighted_bce, focal, asl, ce; auto = bce or ce by task."""
    gamma: float | None = None
    """Focal gamma."""
    alpha: float | list[float] | None = None
    """Focal alpha: one number, or one per class (S4: [1.0, 1.5, 2.0, 12.0])."""
    gamma_neg: float | None = None
    """Asymmetric loss gamma for negatives."""
    gamma_pos: float | None = None
    """Asymmetric loss gamma for positives."""
    clip: float | None = None
    """Asymmetric loss probability margin for negatives."""
    label_smoothing: float | None = None
    """Label smoothing (multi-class)."""
    class_weights: str | list[float] | None = None
    """Multi-class per-class weights: ``inverse_frequency`` (from train counts) or a list; null = none."""
    pos_weight: list[float] | None = None
    """Multi-label positive weights per class (``weighted_bce`` computes them from train when null)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Any other keyword arguments for ``build_loss``."""

    def __post_init__(self) -> None:
        _check(bool(self.name), "loss.name", "must not be empty")
        if isinstance(self.class_weights, str):
            _one_of(self.class_weights, ("inverse_frequency", "balanced"), "loss.class_weights")
        ls = self.label_smoothing
        _check(ls is None or 0 <= ls < 1, "loss.label_smoothing", "must be in [0, 1)")

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``build_loss``: the fields that are set, plus ``params``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("name", "params")}
        return {**{k: v for k, v in out.items() if v is not None}, **self.params}


@dataclass
class SamplerConfig:
    name: str = "none"
    """none (shuffle), balanced (multi-class: equal draws per class), rarity (multi-label: by rarest positive)."""
    replacement: bool = True
    """Draw with replacement (needed to oversample rare classes)."""
    num_samples: int | None = None
    """Draws per epoch; null = the number of training images."""

    def __post_init__(self) -> None:
        _one_of(self.name, SAMPLERS, "sampler.name")
        _range(self.num_samples, 1, 10**9, "sampler.num_samples")


@dataclass
class AugmentConfig:
    policy: str = "medical"
    """Augmentation policy: none, paper (flip + rotation, as S1), medical (default, no flip), lab_a (S3), lab_b (S4)."""
    clahe: bool = False
    """Apply CLAHE (clip 1.5, 8x8 tiles) to the uint8 image first, train and eval."""
    hflip: float | None = None
    """Override the policy's horizontal-flip probability (anatomy is not mirror-symmetric: keep 0 unless sure)."""
    random_erasing: float | None = None
    """Override the policy's random-erasing probability."""
    mixup: float = 0.0
    """Mixup beta alpha (0 = off)."""
    cutmix: float = 0.0
    """Cutmix beta alpha (0 = off)."""
    mix_prob: float = 1.0
    """Probability that a batch is mixed at all when mixup or cutmix is on."""
    cutmix_prob: float = 0.5
    """When both are on, probability of cutmix instead of mixup."""

    def __post_init__(self) -> None:
        _one_of(self.policy, POLICIES, "augment.policy")
        for key in ("hflip", "random_erasing"):
            v = getattr(self, key)
            _check(v is None or 0 <= v <= 1, f"augment.{key}", "must be a probability in [0, 1] or null")
        for key in ("mix_prob", "cutmix_prob"):
            _check(0 <= getattr(self, key) <= 1, f"augment.{key}", "must be a probability in [0, 1]")
        _check(self.mixup >= 0 and self.cutmix >= 0, "augment.mixup", "mixup/cutmix alpha must be >= 0")


@dataclass
class OptimConfig:
    name: str = "adamw"
    """Optimiser: sgd (with momentum), adam or adamw."""
    weight_decay: float = 0.0
    """Weight decay (not applied to biases and norm parameters)."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = False
    """SGD Nesterov momentum."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam/AdamW betas."""
    layer_lrs: dict[str, float] = field(default_factory=dict)
    """Learning rate per parameter-name prefix, e.g. {patch_embed: 1e-5, blocks: 1e-4, head: 1e-3}; others: train.lr."""

    def __post_init__(self) -> None:
        _one_of(self.name, OPTIMIZERS, "optim.name")
        _range(self.weight_decay, 0, 10, "optim.weight_decay")
        _check(len(self.betas) == 2, "optim.betas", "needs two numbers")
        for k, v in self.layer_lrs.items():
            _check(0 < v <= 10, f"optim.layer_lrs.{k}", "must be in (0, 10]")


@dataclass
class ScheduleConfig:
    name: str = "cosine"
    """Schedule: none, cosine (with warm-up), plateau (on the validation metric) or step."""
    warmup_epochs: float = 0.0
    """Linear warm-up length in epochs (cosine)."""
    min_lr: float = 0.0
    """Final learning rate of the cosine (and floor of plateau)."""
    per_step: bool = True
    """Cosine: update every optimiser step (true) or every epoch."""
    factor: float = 0.1
    """Plateau / step: multiply the lr by this."""
    patience: int = 2
    """Plateau: epochs without improvement before reducing."""
    step_size: int = 10
    """Step: epochs between reductions."""

    def __post_init__(self) -> None:
        _one_of(self.name, SCHEDULES, "schedule.name")
        _check(0 < self.factor < 1, "schedule.factor", "must be in (0, 1)")
        _range(self.warmup_epochs, 0, 10**5, "schedule.warmup_epochs"), _range(self.min_lr, 0, 10, "schedule.min_lr")
        _range(self.step_size, 1, 10**5, "schedule.step_size"), _range(self.patience, 0, 10**5, "schedule.patience")


@dataclass
class TrainConfig:
    epochs: int = 10
    """Number of epochs."""
    batch_size: int = 32
    """Images per optimiser micro-batch (per process under DDP)."""
    lr: float = 1e-3
    """Base learning rate (``optim.layer_lrs`` override it per layer)."""
    seed: int = 0
    """Seed for Python, NumPy, torch and the data order."""
    device: str = "auto"
    """auto (cuda when available), cpu or cuda."""
    accumulate: int = 1
    """Gradient accumulation: micro-batches per optimiser step."""
    clip_grad: float | None = None
    """Clip the gradient norm to this value (null = off)."""
    amp: str = "auto"
    """Mixed precision: auto, off (float32), bf16 (GPU, or a CPU with native bf16: AVX512-BF16/AMX/Arm BF16) or
    fp16 (GPU only, with a grad scaler). auto: bf16 on GPU and on a CPU with native bf16, else float32."""
    ema: float | None = None
    """EMA decay of the weights (e.g. 0.999); the EMA model is the one evaluated and saved. null = off."""
    swa_start: int | None = None
    """Start stochastic weight averaging at this epoch (1-based); BN is updated at the end. null = off."""
    early_stopping: int | None = None
    """Stop after this many epochs without validation improvement (best weights kept). null = off."""
    channels_last: bool = False
    """Use the channels_last memory format (faster convolutions on GPU)."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms and fixed seeds: a resumed run equals an uninterrupted one."""
    log_every: int = 50
    """Batches between progress-bar updates of the running loss."""
    eval_batch_size: int | None = None
    """Batch size for validation and prediction (null = 2 x batch_size)."""
    threads: int | None = None
    """torch intra-op threads on CPU (null = the available cores minus data.num_workers, at least 1)."""
    log: str = "none"
    """Experiment tracking: none, tensorboard (RUN/tensorboard) or mlflow (``pip install 'cxrlab[track]'``)."""

    def __post_init__(self) -> None:
        _range(self.epochs, 1, 10**5, "train.epochs")
        _range(self.batch_size, 1, 65536, "train.batch_size")
        _range(self.eval_batch_size, 1, 65536, "train.eval_batch_size")
        _check(0 < self.lr <= 10, "train.lr", f"{self.lr} is outside (0, 10]")
        _range(self.accumulate, 1, 4096, "train.accumulate")
        _range(self.threads, 0, 1024, "train.threads")
        _range(self.seed, 0, 2**63 - 1, "train.seed")
        _check(self.clip_grad is None or 0 < self.clip_grad <= 1e6, "train.clip_grad", "must be in (0, 1e6] or null")
        _one_of(self.device, DEVICES, "train.device")
        _one_of(self.amp, AMP_MODES, "train.amp")
        _check(self.ema is None or 0 < self.ema < 1, "train.ema", "decay must be in (0, 1) or null")
        _range(self.swa_start, 1, 10**5, "train.swa_start")
        _range(self.early_stopping, 1, 10**5, "train.early_stopping")
        _range(self.log_every, 1, 10**9, "train.log_every")
        _one_of(self.log, TRACKERS, "train.log")
