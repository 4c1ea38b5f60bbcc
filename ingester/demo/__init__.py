"""`pgcti demo`: the whole pipeline on the embedded database with a live board."""
