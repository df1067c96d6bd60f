"""Reflex State classes: call backend services, hold what the pages show."""
