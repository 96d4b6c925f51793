"""Intake: one inbound message in, one transaction out — what it continues, what it asks, what the learner
asks of the desk, and what is kept aside for staff."""
