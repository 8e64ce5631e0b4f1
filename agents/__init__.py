"""The Faust app and its agents: wiring only; the logic is in pipeline.stream and friends."""
