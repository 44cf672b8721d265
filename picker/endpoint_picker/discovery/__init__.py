"""Discovery sources fill the Datastore: `files` (local mode, tests) or `kubernetes` (in cluster)."""
