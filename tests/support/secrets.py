"""The secret key tests run with (``MQL_SECRET_KEY``; stored secrets are encrypted)."""

from mqlengine.store.secretbox import SecretBox

TEST_SECRET_KEY = "test-secret-key-for-encrypted-destinations"
TEST_BOX = SecretBox(TEST_SECRET_KEY)
