"""The day-one demo: a seeded traffic generator with scripted incidents and a live terminal view."""
