"""Deployment: physically smaller networks (shrink), complexity, export formats."""
