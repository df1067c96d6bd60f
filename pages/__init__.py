"""Reflex pages: one module per area; layout and bindings only (data comes from state/)."""
