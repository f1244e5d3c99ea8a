"""Persona images: templates, clones with a fresh identity, capture."""
