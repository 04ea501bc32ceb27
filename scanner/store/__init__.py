"""The scan database: analysis cache, people, history and purge."""
