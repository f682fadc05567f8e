"""Sources, one module or package each; they register their type on import."""
