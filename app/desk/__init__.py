"""The team lead's desk."""
