"""com.microsoft contrib attention ops (filled below)."""
