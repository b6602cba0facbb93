"""Request-lifecycle hooks only: they never block a request and never raise into it."""
