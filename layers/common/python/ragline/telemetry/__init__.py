"""Telemetry: logging, metrics, the price table and cost calculation."""
