"""Mobile terminals: WHIP publishers (officers' phones, body cameras), WHEP viewers, and
the relay between them that forwards encoded frames without transcoding."""
