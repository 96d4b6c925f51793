"""complaintbot core package."""
