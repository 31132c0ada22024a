"""The one exception type users see.

Every problem a user can fix (bad flag, unreadable file, empty corpus...) is raised
as :class:`W2VError` with a one-line message that says what is wrong and what to do.
The CLI prints it without a traceback and exits non-zero; library callers can catch
it like any other exception.
"""


class W2VError(ValueError):
    """A user-fixable error; ``str(err)`` is a complete one-line message."""


class UnknownWord(W2VError, KeyError):
    """A word that is not in the vocabulary: a W2VError, and the KeyError that a
    gensim user's ``except KeyError`` expects."""

    def __str__(self) -> str:  # KeyError's own would quote the message
        return str(self.args[0]) if self.args else ""


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C, SIGTERM) after saving a checkpoint.

    Attributes:
      step: the SGD step of the checkpoint written before stopping (None: no checkpointer).
    """

    def __init__(self, step: int | None):
        super().__init__(f"interrupted at step {step}")
        self.step = step
