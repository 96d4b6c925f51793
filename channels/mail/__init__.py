"""The complaint mailbox: read over IMAP (or a Maildir), answered over SMTP, threaded by Message-ID."""
