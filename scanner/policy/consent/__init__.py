"""Consent records: the YAML file, its CSV import and the grants they hold."""
