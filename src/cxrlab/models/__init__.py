"""Models: one factory for the paper models and timm/torchvision backbones (see ``factory.py``)."""

from cxrlab.models.factory import count_parameters, create_model, list_models, model_summary, rebuild_kwargs

__all__ = ["count_parameters", "create_model", "list_models", "model_summary", "rebuild_kwargs"]
