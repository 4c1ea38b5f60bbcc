"""PBX transports: each keeps a subscription alive and hands every frame, untouched, to the writer."""
