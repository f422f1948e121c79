"""notifications: a shared, bounded log of messages for people and agents."""
