"""complaintbot bot package."""
