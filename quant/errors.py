"""Conversion errors; every message is shown to the user as it is."""

from __future__ import annotations

from models.errors import DiskFull, FiresideError


class ConversionError(FiresideError):
    """The conversion could not finish (its partial output has been removed)."""


class NotEnoughSpace(ConversionError, DiskFull):
    """The disk lacks room for the output; nothing was written."""


CONVERT_ADVICE = "Free some space or choose another output folder (-o)."


class QualityError(ConversionError):
    """The quality of a conversion could not be measured; the message says why."""
