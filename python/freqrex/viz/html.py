"""What the HTML reports share: the Jinja2 environment, number formats, data URIs, safe links, tables.

Jinja2 (``pip install 'freqrex[report]'``) is imported when a page is
rendered, not when this module is imported. Pages are written atomically.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple
from urllib.parse import quote, urlsplit

import numpy as np

from .._atomic import make_folder, write_text
from ..errors import ParameterError

__all__ = ["cell", "href_of_path", "markdown_html", "markdown_table", "render_page", "safe_href", "write_page"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_ENV = None


# =========================================================================== numbers
def fmt_hz(v: float) -> str:
    """``"1,000"``, ``"12.5"``, ``"3.25"``: a frequency for a table."""
    if v >= 100 or v == 0:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_num(v: Any, digits: int = 3) -> str:
    """A value for a table cell: thousands separators, ``—`` for missing, ``yes``/``no``."""
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "—"
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        if f != 0 and (abs(f) >= 1e5 or abs(f) < 10 ** (-digits)):
            return f"{f:.{digits}g}"
        return f"{f:,.{digits}f}"
    return str(v)


def fmt_count(n: int, unit: str) -> str:
    """``"1 bin"``, ``"2,048 bins"``."""
    n = int(n)
    return f"{n:,} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def fmt_seconds(v: Optional[float]) -> str:
    """``"250 ms"``, ``"12.5 s"``, ``"3 min 20 s"``."""
    if v is None:
        return "—"
    v = float(v)
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 120:
        return f"{v:.1f} s"
    return f"{int(v // 60)} min {v % 60:.0f} s"


# =========================================================================== data URIs
def png_data_uri(fig, dpi: int = 100) -> Tuple[str, Tuple[int, int]]:
    """(``data:image/png;base64,...``, (width, height) in pixels) of a matplotlib Figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    w, h = fig.get_size_inches() * dpi
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), (int(w), int(h))


def wav_data_uri(x: np.ndarray, sample_rate: int, gain: float = 1.0) -> str:
    """``data:audio/wav;base64,...``: 16-bit PCM of `x` times `gain`, clipped to [-1, 1]."""
    import soundfile as sf

    y = np.clip(np.asarray(x, dtype=np.float64).ravel() * gain, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), int(sample_rate), format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# =========================================================================== links
def safe_href(href: str) -> str:
    """`href` when it is a relative reference or a ``file:`` URL; ParameterError for any other scheme.

    A report links only to files beside it: ``javascript:``, ``data:``,
    ``http:`` and every other scheme are refused, so a crafted path in a
    record cannot put script into a page.
    """
    text = str(href)
    if any(ord(c) < 0x20 for c in text):
        raise ParameterError(f"a report link may not hold control characters: {text!r}")
    scheme = urlsplit(text.strip()).scheme.lower()
    if scheme not in ("", "file"):
        raise ParameterError(f"a report links only to relative paths or file: URLs, not {scheme}: ({text[:80]!r})")
    if scheme == "" and text.startswith("//"):
        raise ParameterError(f"a report link may not name a host: {text[:80]!r}")
    return text


def href_of_path(target: os.PathLike, start: os.PathLike) -> str:
    """The relative URL of file `target` from directory `start`, percent-encoded.

    Every character that could start a scheme or a query (``:``, ``?``, ``#``,
    ...) is encoded, so the result is always a relative reference.
    """
    rel = os.path.relpath(Path(target).resolve(), Path(start).resolve())
    return safe_href(quote(Path(rel).as_posix(), safe="/-_.~()"))


# =========================================================================== tables
def cell(text: Any, *, href: Optional[str] = None, cls: Optional[str] = None, after: str = "",
         td: Optional[str] = None) -> dict:
    """A table cell for the templates' ``table`` macro: text, a link or a marked span, a ``<td>`` class."""
    return {"text": str(text), "href": None if href is None else safe_href(href), "cls": cls, "after": after,
            "td": td}


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], *,
                   align: Optional[Sequence[str]] = None) -> str:
    """A Markdown pipe table: the one function that writes them.

    Parameters
    ----------
    header : sequence
        Column titles.
    rows : sequence of sequences
        Cells (``str()`` of each; a ``|`` in a cell is escaped, line breaks
        become spaces).
    align : sequence of {"left", "right", "center"}, optional
        One per column (default: left).

    Returns
    -------
    str
        The table, one line per row, ending with a newline.
    """
    def cell(v: Any) -> str:
        return " ".join(str(v).split()).replace("|", r"\|")

    n = len(header)
    if any(len(r) != n for r in rows):
        raise ParameterError(f"every row of a table needs {n} cells")
    rules = {"left": "---", "right": "--:", "center": ":-:"}
    align = list(align) if align is not None else ["left"] * n
    if len(align) != n or any(a not in rules for a in align):
        raise ParameterError(f"align needs {n} of left, right, center")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(rules[a] for a in align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def markdown_html(text: str) -> str:
    """Markdown (pipe tables, emphasis, code) as HTML, by the ``markdown`` package.

    Raw HTML in `text` is escaped first, so names inside the Markdown cannot
    inject markup.
    """
    try:
        import markdown
    except ImportError as exc:
        raise ParameterError("HTML reports need markdown: pip install 'freqrex[report]'") from exc
    return markdown.markdown(html.escape(text, quote=False), extensions=["tables"], output_format="html")


# =========================================================================== pages
def _environment():
    global _ENV
    if _ENV is None:
        try:
            import jinja2
        except ImportError as exc:
            raise ParameterError("HTML reports need jinja2: pip install 'freqrex[report]'") from exc
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
            autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(num=fmt_num, hz=fmt_hz, seconds=fmt_seconds, count=fmt_count, href=safe_href)
        _ENV = env
    return _ENV


def render_page(template: str, **context: Any) -> str:
    """The text of ``templates/<template>`` rendered with `context` (and the footer's facts)."""
    from .._core import __version__

    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return _environment().get_template(template).render(version=__version__, written_at=now, **context)


def write_page(path: os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically (a temporary file renamed into place), making parent directories."""
    p = Path(path)
    make_folder(p.parent)
    write_text(p, text)
    return p
