"""The PyTorch backend of reinforce."""
