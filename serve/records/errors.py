"""The records package's exceptions. Messages name tenants, call keys and counts, never
transcript text.

    RecordsError
    ├── UnknownCall        no such call for this tenant (or its text was purged)
    ├── StoreUnavailable   the database cannot be reached; the recorder spools
    ├── SpoolFull          the store is down and the local spool is at its bound
    └── UnreadableRecord   a row that does not open (corrupt, foreign, or shredded)
"""

from __future__ import annotations


class RecordsError(Exception):
    pass


class UnknownCall(RecordsError):
    pass


class StoreUnavailable(RecordsError):
    pass


class SpoolFull(RecordsError):
    pass


class UnreadableRecord(RecordsError):
    pass
