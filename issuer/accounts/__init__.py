"""Accounts: users, their passwords (bounded bcrypt off the event loop) and the demo account."""
