"""Kafka message bytes -> events."""
