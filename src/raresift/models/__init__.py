"""Models: adapters, small networks and the features strategies compute from them."""
