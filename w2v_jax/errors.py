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


class RunLocked(W2VError):
    """Another process holds the run directory's lock (it is training there)."""


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is the host (numpy) or an XLA backend running out of memory: bad
    input too (a step or table too large for the machine), not a bug."""
    return isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e)


def memory_advice(e: BaseException, flags: bool = True) -> str:
    """The one-line message for an :func:`out_of_memory` error, naming the settings to
    lower as command-line ``flags`` or as config fields."""
    what = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    names = ["batch_size", "window", "negative", "vector_size", "steps_per_call"]
    if flags:
        names = ["--" + n.replace("_", "-") for n in names]
    return f"out of memory ({what}); lower {', '.join(names[:-1])} or {names[-1]}"


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C, SIGTERM) after saving a checkpoint.

    Attributes:
      step: the SGD step of the checkpoint written before stopping (None: no checkpointer).
    """

    def __init__(self, step: int | None):
        super().__init__(f"interrupted at step {step}")
        self.step = step
