"""Study configurations (YAML), shipped with the package."""
