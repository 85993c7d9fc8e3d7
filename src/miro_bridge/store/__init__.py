"""SQLite storage: the connection thread, the schema migrations, and the repositories.

Only the Store actor (`miro_bridge.actors.store`) opens a `Database`; other actors send it
functions of a connection from the repository modules here.
"""

from miro_bridge.store._database import Database, SchemaTooNew, migrate
from miro_bridge.store.migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "Database", "SchemaTooNew", "migrate"]
