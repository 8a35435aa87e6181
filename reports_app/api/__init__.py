"""REST API v1 of the reports feature (mounted under /api/v1/ by ``labbook.urls``)."""
