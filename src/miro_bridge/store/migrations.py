"""The schema, as numbered migrations applied at start-up.

Migration N is `MIGRATIONS[N - 1]`; the database records the last one applied in
`PRAGMA user_version`. Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = ()
