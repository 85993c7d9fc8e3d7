"""Values that travel between the HTTP layer, the actors and the store: frozen attrs records.

Each module holds one domain's records (`jobs`, `boards`, `users`, `idempotency`,
`client_logs`). They carry no behaviour beyond what describes them, and nothing here knows
how or where they are stored.
"""
