"""A PBX on loopback: realistic call scenarios spoken over the PBX's own protocol."""
