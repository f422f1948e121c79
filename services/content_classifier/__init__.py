"""content-classifier: rank Johnny.Decimal categories for a piece of text."""
