"""complaintbot channels package."""
