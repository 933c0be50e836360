"""Recordings of mobile terminals: segments written without re-encoding, indexed in
SQLite by source, identity and time; searched, played and exported."""
