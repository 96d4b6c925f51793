"""Tickets and their workflow: moves, views, cards, merges, canned replies, search, the staff directory,
learners' identities, and the clocks that wait on the learner (call-back, follow-up, second instance)."""
