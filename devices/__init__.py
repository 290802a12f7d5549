"""Shipped device profiles (YAML files, one per device); see :func:`xbar.list_devices`."""
