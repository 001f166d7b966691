"""Cluster mode: several replicas on one PostgreSQL database, accounts split into shards, each
shard a lease (owner, epoch, expiry) one replica holds at a time (DESIGN §6, README "Running
several replicas")."""
