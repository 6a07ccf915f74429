"""Repositories: the store's queries by aggregate, returning typed values."""
