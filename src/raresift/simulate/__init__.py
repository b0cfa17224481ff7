"""Simulated studies: synthetic pools and real-data scenarios, resumable runners, metrics,
statistics, plots and reports."""
