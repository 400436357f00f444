"""Progress bars for map calls, in MPIRE's styles, with MPIRE's option rules.

``bar_options`` does what MPIRE's ``check_progress_bar_options`` does, on
every map call (``progress_bar=True`` or not): ``progress_bar_options`` must
be a dict, ``total`` and ``leave`` are overridden with a ``RuntimeWarning``,
``position`` is refused for the rich style, unknown or ill-typed tqdm options
fail before any task is sent, and MPIRE's defaults fill in what the user did
not set.
"""
from __future__ import annotations

import io
import warnings
from typing import Any

from tqdm.std import TqdmKeyError

from .. import tqdm_utils

STYLES = (None, "std", "rich", "notebook", "dashboard")
_CONCRETE = ("std", "rich", "notebook", "dashboard")

# MPIRE's defaults: the user's options override these ...
DEFAULT_OPTIONS: dict[str, Any] = {"position": 0, "dynamic_ncols": True, "mininterval": 0.1, "maxinterval": 0.5}
# ... and these options of the style's tqdm class are not std tqdm's (stripped when checking the rest)
_STYLE_ONLY_OPTIONS = {"rich": ("options",), "notebook": ("display",)}


def check_style(style: Any) -> str:
    """The style a call uses: ``style``, or ``tqdm_utils.PROGRESS_BAR_DEFAULT_STYLE`` (read now) for ``None``."""
    if style not in STYLES:
        raise ValueError(f"progress_bar_style must be one of {', '.join(map(repr, STYLES))}, got {style!r}")
    if style is None:
        style = tqdm_utils.PROGRESS_BAR_DEFAULT_STYLE
        if style not in _CONCRETE:
            raise ValueError(f"mpire_fault.tqdm_utils.PROGRESS_BAR_DEFAULT_STYLE must be one of "
                             f"{', '.join(map(repr, _CONCRETE))}, got {style!r}")
    return style


def bar_options(options: Any, total: int | None, style: str, stacklevel: int = 1) -> dict[str, Any]:
    """The keyword arguments of the call's tqdm bar, checked as MPIRE checks them.

    The warnings name the frame ``stacklevel`` levels up from this function's
    caller (1: the caller itself), so a pool can point them at the user's line.
    """
    # As in MPIRE, any falsy value means no options; anything else must be a dict.
    options = options or {}
    if not isinstance(options, dict):
        raise TypeError(f"progress_bar_options should be a dictionary, got {type(options).__name__}")
    if "total" in options:
        warnings.warn("progress_bar_options['total'] is overwritten with the number of tasks, as in MPIRE; "
                      "pass iterable_len to set it", RuntimeWarning, stacklevel=stacklevel + 1)
    if "leave" in options:
        warnings.warn("progress_bar_options['leave'] is overwritten (the bar is always left), as in MPIRE",
                      RuntimeWarning, stacklevel=stacklevel + 1)
    if style == "rich" and "position" in options:
        raise NotImplementedError("The 'position' parameter is not supported for rich progress bars (as in MPIRE)")
    merged = {**DEFAULT_OPTIONS, **options, "total": total, "leave": True}
    if options:  # the defaults alone are known to be valid
        _check_with_tqdm(merged, style)
    return merged


def _check_with_tqdm(options: dict[str, Any], style: str) -> None:
    """Build a throwaway std bar that writes to a StringIO, so a bad option fails now, as in MPIRE."""
    from tqdm.std import tqdm

    skip = _STYLE_ONLY_OPTIONS.get(style, ())
    kwargs = {key: value for key, value in options.items() if key not in skip}
    kwargs["file"] = io.StringIO()
    try:
        tqdm(**kwargs).close()
    except (TqdmKeyError, TypeError) as exc:
        raise exc from ValueError("There's an error in progress_bar_options: one of the options does not exist "
                                  "or is not properly formatted. See tqdm.tqdm() for the options.")


def progress_bar(style: str | None, options: dict[str, Any]) -> Any:
    """A tqdm bar of ``style`` built from ``options`` (see ``bar_options``), or None for ``"dashboard"``.

    MPIRE's dashboard style draws nothing in the terminal (the bar lives in
    its web dashboard, which this project does not ship), so neither do we.
    """
    style = check_style(style)
    if style == "dashboard":
        return None
    if style == "notebook":
        from tqdm.notebook import tqdm
    elif style == "rich":
        try:
            import rich  # noqa: F401  (tqdm.rich needs it and says so only at the first update)
        except ImportError as exc:
            raise ImportError("progress_bar_style='rich' needs the rich package: pip install rich") from exc
        from tqdm.rich import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(**options)
