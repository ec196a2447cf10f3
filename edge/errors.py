"""The one error type the project raises for problems a user can fix (bad file, bad model...).

CLIs turn it into a one-line message and a non-zero exit status instead of a traceback.
"""


class EdgeError(Exception):
    """A problem with an input, a model or a setting, described for the person at the board."""
