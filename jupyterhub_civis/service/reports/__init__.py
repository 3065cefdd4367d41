"""Report links: notebooks that refresh themselves (docs/reports.md)."""
