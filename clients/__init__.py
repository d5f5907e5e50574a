"""The Flower ClientApp: local training on a client's private shard."""
