"""The trainable selector: fine-tune the score stage's retrieval model on human choices between candidates
(`vlcurate selector train`), and synthetic data to try it on (`vlcurate selector synth`). Not a stage: it reads a
finished caption (or score) stage, and what it writes the score stage loads by path. Each scorer kind that can be
fine-tuned says how (`Scorer.trainable()`)."""

from vlcurate.stages.selector.labels import Example, is_holdout, join_labels, read_labels, split_examples
from vlcurate.stages.selector.train import (SelectorTrainConfig, TrainResult, learning_rate_factor, load_scorer,
                                            selection_accuracy, selection_loss, train_from_files, train_selector)

__all__ = ["Example", "SelectorTrainConfig", "TrainResult", "is_holdout", "join_labels", "learning_rate_factor",
           "load_scorer", "read_labels", "selection_accuracy", "selection_loss", "split_examples",
           "train_from_files", "train_selector"]
