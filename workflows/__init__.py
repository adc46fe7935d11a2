"""Rollout strategies as Temporal workflows: pure orchestration, one strategy per module."""
