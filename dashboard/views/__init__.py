"""The researchers' pages, one module per part of the dashboard."""
