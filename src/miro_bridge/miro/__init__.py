"""Miro's wire protocol as the service speaks it: OAuth endpoints, REST calls, bodies."""
