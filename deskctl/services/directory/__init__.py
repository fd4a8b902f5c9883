"""The directory: users, groups, locations, contacts."""
