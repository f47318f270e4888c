"""The JSON API of API.md, version 1."""
