"""The pieces of scripts/bench.py: timing, models and inputs, capture ratios, tab clicks, attention
flow, payloads, and the report. `python scripts/bench.py` is the entry point."""
