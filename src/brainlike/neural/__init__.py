"""Neural recordings: datasets, alignment to the stimulus, simulators and loaders."""
from brainlike.neural.dataset import NeuralDataset
from brainlike.neural.word_locked import word_locked_responses

__all__ = ["NeuralDataset", "word_locked_responses"]
