"""crossmargin margin package."""
