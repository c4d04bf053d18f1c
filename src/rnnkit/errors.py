"""Typed exceptions: the API raises these, the CLI turns each into one line on stderr and exit code 2."""


class RnnkitError(Exception):
    """Base class for every error caused by the user's input rather than by a bug in rnnkit."""


class ConfigError(RnnkitError, ValueError):
    """An invalid hyperparameter or option (zero sizes, dropout outside [0, 1), unknown names...)."""


class DataError(RnnkitError):
    """A data file or directory that is missing, empty, binary, not UTF-8, or too short."""


class CheckpointError(RnnkitError):
    """A checkpoint directory that is missing, incomplete, corrupt or written by something else."""


class PromptError(RnnkitError):
    """A prompt that the model's vocabulary cannot encode."""


class OutputExistsError(RnnkitError):
    """The output directory exists already and `overwrite` was not asked for."""


class TrainingStopped(RnnkitError):
    """SIGINT or SIGTERM arrived during training; a checkpoint was saved first."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


class TrainingDiverged(RnnkitError):
    """The loss or a gradient became NaN or infinite and `on_nan` said to stop (or could not recover)."""


class MissingExtraError(ConfigError, ImportError):
    """An optional dependency (matplotlib, hmmlearn, ...) that this feature needs is not installed;
    the message names the pip extra that brings it."""
