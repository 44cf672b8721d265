"""Filter → Score → Pick scheduling with pluggable, registry-built plugins."""
