"""file-system: read and write files inside one vault directory, never outside it."""
