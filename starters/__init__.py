"""Thin command-line entry points: `rollout start|status|promote|abort|list|worker|dev|cluster|demo`."""
