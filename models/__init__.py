"""Pydantic models shared by workflows, activities and the CLI: the rollout spec, status and messages."""
