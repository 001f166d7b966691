"""Pieces every crossmargin package shares: the error hierarchy, redaction, amount formatting."""
