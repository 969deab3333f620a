"""Generated blocks inside hand-written Markdown: `<!-- begin NAME -->` ... `<!-- end NAME -->`.

A document keeps its prose; the numbers between the markers come from
committed JSON through a script, which can rewrite them (`fill`) or only
report which blocks no longer match their data (`stale`, for tests).
"""
import re

_BLOCK = re.compile(r"(<!-- begin (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- end (?P=name) -->)",
                    re.S)


def blocks(text):
    """{name: body} of every generated block in text."""
    return {m["name"]: m["body"] for m in _BLOCK.finditer(text)}


def fill(text, generated):
    """text with each block whose name is in `generated` replaced by its new body."""
    def body(m):
        name = m["name"]
        if name not in generated:
            return m.group(0)
        return m.group(1) + generated[name].rstrip("\n") + "\n" + m.group(4)
    return _BLOCK.sub(body, text)


def stale(text, generated):
    """Names of the blocks in `generated` missing from text or differing from it."""
    found = blocks(text)
    return sorted(name for name, body in generated.items()
                  if found.get(name, "").rstrip("\n") != body.rstrip("\n"))


def table(header, rows):
    """A Markdown table: the header, then one line per row."""
    lines = ["| " + " | ".join(str(c) for c in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
