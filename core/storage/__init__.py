"""Storage: the database (engines, schema, migrations' runner), durable state and leases, ticket numbers,
the group-commit writer, and the vault that encrypts personal data at rest."""
