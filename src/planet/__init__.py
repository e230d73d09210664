"""planet: a Twisted-native feed aggregator daemon."""

__version__ = "0.1.0"
