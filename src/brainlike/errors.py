"""User-facing errors.

Every error that a user can cause (bad input files, unknown model names, mismatched data) is raised as a
subclass of :class:`BrainlikeError`; the command line prints its message without a traceback.
"""


class BrainlikeError(ValueError):
    """An error in the user's input, with a message that says what to fix."""


class StimulusError(BrainlikeError):
    """A stimulus file or word list is malformed (the message names the offending row)."""


class ModelError(BrainlikeError):
    """A model name or path cannot be resolved or loaded."""


class NeuralDataError(BrainlikeError):
    """Neural recordings are malformed or do not match the stimulus."""
