"""Privacy duties (POLICY.md §7): erasure on request, scrubbing expired personal data, key rotation
and the key check at start."""
