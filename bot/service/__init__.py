"""`parley serve`: the HTTP server (health, readiness, metrics), the platforms found through
entry points, and graceful start-up and shutdown."""
