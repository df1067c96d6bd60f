"""The product's core: pure Python, never imports reflex, state/ or pages/."""
