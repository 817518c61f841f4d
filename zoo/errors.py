"""The one error type for bad user input: recipes print its message on one line."""


class ZooError(ValueError):
    """Bad input (flag, file, dataset, config). The message says what was wrong and how to fix it."""
