"""jd-classifier: look up and place documents in a Johnny.Decimal structure."""
