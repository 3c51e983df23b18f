"""The Jumpstarter lab controller and router: leases on shared hardware, without Kubernetes."""
