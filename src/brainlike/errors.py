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


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a long run, with how far it got (finished work is kept; the same command resumes).

    Attributes
    ----------
    done, total : int
        units of work finished (including those reused from an earlier run) and planned.
    unit : str
        what a unit is (e.g. "layer-chunk fits").
    """

    def __init__(self, done: int, total: int, unit: str) -> None:
        super().__init__(f"{done} of {total} {unit} done")
        self.done, self.total, self.unit = int(done), int(total), unit

    def progress(self) -> str:
        """The progress message: ``<done> of <total> <unit> done``."""
        return f"{self.done} of {self.total} {self.unit} done"
