"""The table a small benchmark prints and the CSV it writes, from the same rows."""

from __future__ import annotations

import csv
from pathlib import Path


def report(rows: list[dict], out_dir: Path, name: str) -> Path:
    """Write rows to out_dir/name.csv and print them as aligned columns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.csv"
    columns = list(rows[0])
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    widths = {c: max(len(c), *(len(str(row[c])) for row in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    print(f"written: {path}")
    return path
