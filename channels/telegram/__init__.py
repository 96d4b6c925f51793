"""Telegram adapter: the Bot API channel for learners and the staff chats."""
