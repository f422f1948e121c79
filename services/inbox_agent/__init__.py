"""inbox-agent: file everything in the unsorted inbox into the vault, using the other services."""
