"""Simulated active-learning studies: scenarios, a resumable runner, statistics, reports."""
