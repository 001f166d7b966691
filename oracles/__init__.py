"""crossmargin oracles package."""
