"""mixes."""
