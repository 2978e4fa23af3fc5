"""Django's PostgreSQL backend with a cheaper checkout check for its connection pool."""
