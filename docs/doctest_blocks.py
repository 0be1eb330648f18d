"""A griffe extension for the API page: the docstrings' doctest examples become code blocks.

stochtp's docstrings hold plain doctest examples (`>>> ...` lines and their output, run by the
test suite). Markdown would read a `>>>` line as a nested quotation; this extension fences every
such example (from its first `>>>` line to the next blank line) as a `pycon` block before
mkdocstrings renders the docstring.
"""
import griffe


def fence_doctests(text):
    """`text` with each doctest example (a run of lines from a `>>>` line to a blank line) fenced."""
    lines, fenced, in_example = text.splitlines(), [], False
    for line in lines:
        starts = line.lstrip().startswith(">>>")
        if starts and not in_example:
            indent = line[: len(line) - len(line.lstrip())]
            fenced.append(f"{indent}```pycon")
            in_example = True
        elif in_example and not line.strip():
            fenced.append(f"{indent}```")
            in_example = False
        fenced.append(line)
    if in_example:
        fenced.append(f"{indent}```")
    return "\n".join(fenced)


class DoctestBlocks(griffe.Extension):
    def on_object(self, *, obj, loader, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
