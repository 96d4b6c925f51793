"""Managers' reports: the monthly figures computed by the database, charts and PDF,
the summary sentences, and the quarterly credit grades."""
