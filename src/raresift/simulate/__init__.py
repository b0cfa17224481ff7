"""Simulations: synthetic and real scenarios, an oracle, runners, metrics and reports."""
