"""The original jumpstarter's testing package, kept for its users: `jumpstarter_testing.pytest.JumpstarterTest`."""
