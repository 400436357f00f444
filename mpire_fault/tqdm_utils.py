"""The progress bar's default style, where MPIRE keeps it.

MPIRE's docs change the style every ``progress_bar=True`` call uses when it
passes no ``progress_bar_style`` (or ``None``) like this::

    import mpire_fault.tqdm_utils
    mpire_fault.tqdm_utils.PROGRESS_BAR_DEFAULT_STYLE = 'notebook'

The pool reads the name at each call, so setting it after import works. Only
this name is provided; MPIRE's tqdm classes and managers are not.
"""
from __future__ import annotations

PROGRESS_BAR_DEFAULT_STYLE: str = "std"
