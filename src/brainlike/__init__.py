"""brainlike: how brain-like a language model is, where, and why.

The pipeline, as the sub-packages are laid out::

    stimulus  →  models (features)  →  neural (recordings, alignment)  →  encoding (ridge)
              →  analyses  →  store  →  report
"""
from brainlike.errors import BrainlikeError, StimulusError
from brainlike.stimulus import Stimulus

__all__ = ["BrainlikeError", "Stimulus", "StimulusError", "__version__"]
__version__ = "0.1.0"
