"""complaintbot scheduler package."""
