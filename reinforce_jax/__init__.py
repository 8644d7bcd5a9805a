"""The JAX/Flax/Optax backend of reinforce."""
