"""Language models: registry, loading, word alignment and feature extraction."""
from brainlike.models.extract import ExtractionOptions, extract_features
from brainlike.models.features import Features
from brainlike.models.loading import LoadedModel, load_model
from brainlike.models.registry import ModelEntry, register_model, registered_models, resolve_model

__all__ = ["ExtractionOptions", "Features", "LoadedModel", "ModelEntry", "extract_features", "load_model",
           "register_model", "registered_models", "resolve_model"]
