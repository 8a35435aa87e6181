"""Labbook's SQLite database backend: Django's, with checkpoints that cannot race (see ``base``)."""
