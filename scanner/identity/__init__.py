"""Identity: enrolled subjects and the people resolved across recordings."""
