"""crossmargin chains package."""
