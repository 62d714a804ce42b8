"""Noise schedules and samplers (plain functions over a model callable)."""
