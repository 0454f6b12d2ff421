"""PayCycle core: configuration, subscription store, simulator and CLI."""

__version__ = "0.1.0"
