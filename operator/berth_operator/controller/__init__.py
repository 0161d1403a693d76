"""The controller: desired children from the spec, observed state, one reconcile, status."""
