"""SQL functions deskctl registers on every SQLite connection (PostgreSQL has its own)."""

from __future__ import annotations

import json


class Percentiles:
    """`deskctl_percentiles(value, '0.5,0.9')`: a JSON list of the continuous percentiles
    of the group's non-NULL values, as PostgreSQL's `percentile_cont` computes them
    (linear interpolation between the two values around 1 + f * (n - 1)).

    SQLite has no percentile aggregate. Numbering every value with window functions
    sorted the whole input in SQL and took twice as long at 1M rows as collecting each
    group's values here and sorting them in Python."""

    def __init__(self):
        self.values: list = []
        self.fractions = ""

    def step(self, value, fractions: str) -> None:
        if value is not None:
            self.values.append(value)
        self.fractions = fractions

    def finalize(self) -> str | None:
        if not self.values:
            return None
        values = sorted(self.values)
        out = []
        for fraction in (float(f) for f in self.fractions.split(",")):
            position = fraction * (len(values) - 1)  # 0-based
            low = int(position)
            weight = position - low
            below = values[low]
            out.append(float(below) if weight == 0 else below + weight * (values[low + 1] - below))
        return json.dumps(out)


def register(dbapi_connection) -> None:
    dbapi_connection.create_aggregate("deskctl_percentiles", 2, Percentiles)
