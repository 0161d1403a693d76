"""The download Job: fetches repo@revision into the shared cache, with progress in status."""
