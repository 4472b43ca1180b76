"""Plain data and pure functions that export, configuration and tasks share: ids, errors,
URLs without their secrets, the manifest, the verdict on a run. Imports nothing heavy.
"""
