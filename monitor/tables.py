"""Tables for terminals and pipes: the key columns (model ids, the rollback target) are never cut,
everything else folds onto more lines instead of being shortened to ``…``, so ``v41`` and ``v42``
stay apart at 80 columns and in a pipe (where rich assumes 80).

>>> from io import StringIO
>>> from rich.console import Console
>>> t = narrow_table("incidents", ["model_id", "statistic", "action"], keys={"model_id"},
...                  rows=[["intent-classifier@v42", "target_evidence", "rollback"]])
>>> out = StringIO(); Console(file=out, width=30).print(t)
>>> "intent-classifier@v42" in out.getvalue() and "…" not in out.getvalue()
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table


def narrow_table(title: str, columns: Sequence[str], *, keys: Iterable[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table whose ``keys`` columns keep their widest value on one line and whose other columns fold."""
    rows = [list(r) for r in rows]
    keys = set(keys)
    table = Table(title=title, expand=False, pad_edge=False)
    for i, col in enumerate(columns):
        if col in keys:
            widest = max([len(col), *(len(str(r[i])) for r in rows)])
            table.add_column(col, no_wrap=True, min_width=widest, overflow="fold")
        else:
            table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*map(str, r))
    return table
