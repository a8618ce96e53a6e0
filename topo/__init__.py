"""Hardware topologies: parse, validate, discover and place."""
