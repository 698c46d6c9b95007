"""Notification: one message per order and outcome, sent through a pluggable sender."""
