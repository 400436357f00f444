"""Progress bars for map calls, in MPIRE's styles."""
from __future__ import annotations

from typing import Any

STYLES = (None, "std", "rich", "notebook", "dashboard")


def check_style(style: Any) -> None:
    if style not in STYLES:
        raise ValueError(f"progress_bar_style must be one of {', '.join(map(repr, STYLES))}, got {style!r}")


def progress_bar(style: str | None, total: int | None, options: dict | None) -> Any:
    """A tqdm bar of ``style``, or None for ``"dashboard"``.

    MPIRE's dashboard style draws nothing in the terminal (the bar lives in
    its web dashboard, which this project does not ship), so neither do we.
    """
    check_style(style)
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
    return tqdm(total=total, **(options or {}))
