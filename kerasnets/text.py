"""Small text helpers shared by the workflows and the command line.

Standard library only (the command line uses them before TensorFlow loads).
"""

import ast

__all__ = ["format_bytes", "format_count", "format_macs", "one_line", "parse_assignments",
           "short_repr"]


def format_bytes(count):
    """``3 * 2**20`` -> "3.0 MiB" (None -> "-")."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            if unit == "B":
                return f"{value:.0f} {unit}"
            return f"{value:.2f} {unit}" if unit == "GiB" else f"{value:.1f} {unit}"
        value /= 1024


def format_macs(value):
    """Multiply-adds: "6.50 G" / "301 M" (None -> "-")."""
    if value is None:
        return "-"
    return f"{value / 1e9:.2f} G" if value >= 1e9 else f"{value / 1e6:.0f} M"


def format_count(value):
    """Parameters: "37.67 M" (None -> "-")."""
    return "-" if value is None else f"{value / 1e6:,.2f} M"


def parse_assignments(items, what="--model-arg", scoped=False):
    """``["alpha=0.35", "pooling=avg"]`` -> ``{"alpha": 0.35, "pooling": "avg"}``.

    Values are Python literals where they parse (numbers, tuples, True/False/
    None, also spelt true/false/none), strings otherwise. A NAME that is not
    an identifier (with ``scoped``: identifiers joined by "/", as
    ``dpn/k_r``), a missing ``=`` or an empty value is a ValueError naming
    ``what``.
    """
    options = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key, text = key.strip(), text.strip()
        parts = key.split("/") if scoped else [key]
        if not sep or not text or not all(part.isidentifier() for part in parts):
            raise ValueError(f"{what} {item!r}: expected NAME=VALUE (e.g. alpha=0.35)")
        words = {"true": True, "false": False, "none": None}
        if text.lower() in words:
            options[key] = words[text.lower()]
            continue
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def one_line(error):
    """An exception's message on one line (its type where it has none)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def short_repr(value, limit=80):
    """``repr(value)`` for a message, cut after ``limit`` characters (a
    100,000-character name is not echoed whole)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"
