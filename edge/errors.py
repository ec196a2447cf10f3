"""The one error type the project raises for problems a user can fix (bad file, bad model...).

CLIs turn it into a one-line message and a non-zero exit status instead of a traceback.
"""


class EdgeError(Exception):
    """A problem with an input, a model or a setting, described for the person at the board."""


class NotAMammogram(EdgeError):
    """The image plainly is not a mammogram (edge.plausibility); `reason` says why, without the file name.
    `edge-classify --read-anyway` reads it all the same."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
