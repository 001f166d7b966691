"""crossmargin daemon package."""
